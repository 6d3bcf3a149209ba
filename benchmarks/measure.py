"""Timing and memory measurement helpers: medians of repeated runs, peak RSS of one child process."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0", "CUDA_VISIBLE_DEVICES": "-1"}


@dataclass
class Series:
    """Repeated measurements of one quantity."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def summary(self) -> dict[str, float]:
        return {
            "median": self.median,
            "min": min(self.values),
            "max": max(self.values),
            "runs": len(self.values),
        }


@dataclass
class ProcessRun:
    seconds: float
    stdout: str
    stderr: str
    returncode: int


def run_process(argv: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> ProcessRun:
    start = time.perf_counter()
    proc = subprocess.run(
        argv, capture_output=True, text=True, env={**os.environ, **QUIET, **(env or {})}, cwd=cwd
    )
    return ProcessRun(time.perf_counter() - start, proc.stdout, proc.stderr, proc.returncode)


def check(run: ProcessRun, what: str) -> ProcessRun:
    if run.returncode != 0:
        raise RuntimeError(f"{what} failed ({run.returncode}): {run.stderr.strip()[-800:]}")
    return run


_PEAK_PROBE = (
    "import os,sys,subprocess,json;"
    "p=subprocess.Popen(sys.argv[1:],stdout=subprocess.DEVNULL,stderr=subprocess.PIPE);"
    "_,status,ru=os.wait4(p.pid,0);"
    "print(json.dumps({'maxrss':ru.ru_maxrss*1024,'status':os.waitstatus_to_exitcode(status)}))"
)


def peak_rss(argv: list[str], env: dict[str, str] | None = None) -> int:
    """Peak RSS in bytes of exactly one command (wait4 reports it for that child alone)."""
    run = check(run_process([sys.executable, "-c", _PEAK_PROBE, *argv], env=env), "peak-rss probe")
    doc = json.loads(run.stdout.strip().splitlines()[-1])
    if doc["status"] != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} failed with exit code {doc['status']}")
    return doc["maxrss"]


def repeat(fn: Callable[[int], float], runs: int) -> Series:
    return Series([fn(i) for i in range(runs)])
