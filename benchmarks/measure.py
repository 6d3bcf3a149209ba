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


CACHE_STATE_DROP = (
    "dropped (echo 3 > /proc/sys/vm/drop_caches) before each side, once the disks had gone quiet"
)
CACHE_STATE_WARM = (
    "pre-warmed: both sides read the source once before each measurement (drop_caches not permitted)"
)


def _disk_activity() -> tuple[int, ...]:
    """Sectors read, written and discarded, and requests in flight, per block device (/proc/diskstats)."""
    try:
        with open("/proc/diskstats") as f:
            rows = [line.split() for line in f]
    except OSError:
        return ()
    fields = (5, 9, 11, 16)  # sectors read, sectors written, in flight, sectors discarded (kernel >= 4.18)
    return tuple(
        int(row[i]) for row in rows if not row[2].startswith(("loop", "ram")) for i in fields if i < len(row)
    )


def wait_for_quiet_disks(window: float = 0.3, settled: int = 2, limit: float = 15.0) -> float:
    """Wait until no block device reads or writes for `settled` windows in a row (at most `limit` s).

    The file system here is mounted with `discard`: removing the previous side's multi-GB copy sends trims
    that the virtual disk works through for seconds after `sync` returns, and they slowed whichever side
    ran next (a 5 GB pair ranged 0.36-1.00×). Returns the seconds waited.
    """
    started = time.monotonic()
    quiet, last = 0, _disk_activity()
    while quiet < settled and time.monotonic() - started < limit:
        time.sleep(window)
        now = _disk_activity()
        quiet = quiet + 1 if now == last else 0
        last = now
    return time.monotonic() - started


# This VM hands free memory back to its host (virtio-balloon free page reporting), in bursts a couple of
# seconds apart; a page it handed back costs a host fault when the guest uses it again. Right after
# drop_caches the freed page cache is still the guest's: a copy started then reuses it and runs about twice
# as fast as the same copy started once the memory is handed back (`cp -r` 1 GB && sync: 0.8 s against
# 1.7-2.3 s, alternating with the delay between the drop and the run). Which of the two a side got
# depended on how long its warm-up took.
REPORTED_KIB = "/sys/module/page_reporting/parameters/reported_kib"


def _reported_kib() -> int | None:
    try:
        with open(REPORTED_KIB) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def wait_for_memory_handback(still: float = 3.0, poll: float = 0.25, limit: float = 30.0) -> bool:
    """Wait until the guest's free memory is handed back to the host: its reported total unchanged for
    `still` seconds (longer than the gap between two reporting bursts). False where nothing reports it."""
    last = _reported_kib()
    if last is None:
        return False
    started = changed = time.monotonic()
    while time.monotonic() - changed < still and time.monotonic() - started < limit:
        time.sleep(poll)
        now = _reported_kib()
        if now != last:
            last, changed = now, time.monotonic()
    return True


MEMORY_SETTLED = (
    "then, where the VM reports free memory to its host, free page reporting settled (every freed page "
    "handed back, as on an idle machine), so both sides start from the same memory"
)


def settle_cache(paths: list) -> str:
    """Put the page cache in the same state before each side runs; returns which state that is."""
    os.sync()
    wait_for_quiet_disks()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return CACHE_STATE_DROP
    except OSError:
        for root in paths:
            for dirpath, _, names in os.walk(root):
                for name in names:
                    with open(os.path.join(dirpath, name), "rb") as f:
                        while f.read(16 << 20):
                            pass
        return CACHE_STATE_WARM


@dataclass
class Paired:
    """Ours and the reference measured in alternating order (ours, ref, ref, ours, ...), ratio per pair."""

    ours: Series = field(default_factory=Series)
    ref: Series = field(default_factory=Series)
    ratios: Series = field(default_factory=Series)  # ref / ours: > 1 means ours is faster

    def run(self, ours: Callable[[], float], ref: Callable[[], float], pairs: int) -> Paired:
        for i in range(pairs):
            first, second = (ours, ref) if i % 2 == 0 else (ref, ours)
            a, b = first(), second()
            o, r = (a, b) if i % 2 == 0 else (b, a)
            self.ours.values.append(o)
            self.ref.values.append(r)
            self.ratios.values.append(r / o)
        return self

    @classmethod
    def against(
        cls, ours: Callable[[], float], references: dict[str, Callable[[], float]], rounds: int
    ) -> dict[str, Paired]:
        """Ours and every reference once per round, the order reversed from one round to the next (ours
        first, then last, ...), so each reference is paired with the run of ours in its own round."""
        sides = [("", ours), *references.items()]
        times: dict[str, list[float]] = {name: [] for name, _ in sides}
        for i in range(rounds):
            for name, run in sides if i % 2 == 0 else sides[::-1]:
                times[name].append(run())
        return {
            name: cls(
                Series(list(times[""])),
                Series(times[name]),
                Series([r / o for o, r in zip(times[""], times[name], strict=True)]),
            )
            for name in references
        }

    def summary(self, goal: str, ratio_kind: str = "throughput") -> dict:
        """ratio_kind "throughput": reference time / ours (higher is better); "time": ours / reference."""
        ratios = self.ratios if ratio_kind == "throughput" else Series([1 / r for r in self.ratios.values])
        return {
            "ours_seconds": self.ours.summary(),
            "reference_seconds": self.ref.summary(),
            "ratio": ratios.summary(),
            "ratio_kind": ratio_kind,
            "goal": goal,
        }
