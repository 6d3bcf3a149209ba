"""Peak memory of each pipeline step against the model's size: the data behind the README's sizing rule.

`kfp-tfserving run` (kfp.local) runs every step as its own process tree; the check step starts a fresh
process of its own. A poller reads /proc every 50 ms, attributes every process to the step whose executor
started it (`--function_to_execute NAME` on its command line or an ancestor's), and keeps each step's
largest summed RSS. Linux only (it reads /proc).

python -m benchmarks.bench_step_memory --sizes 50,300 [--scratch DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.measure import QUIET
from benchmarks.models import big_keras_model

CLI = [sys.executable, "-m", "kfp_tfserving.pipelines.cli"]
POLL_SECONDS = 0.05


def _processes() -> dict[int, tuple[int, list[str], int]]:
    """pid -> (parent pid, command line, RSS bytes) of every process we can read."""
    table = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
            with open(f"/proc/{entry}/statm") as f:
                rss_pages = int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        table[int(entry)] = (parent, argv, rss_pages * page)
    return table


def _step_of(pid: int, table: dict, root: int) -> str | None:
    """The step whose executor started `pid`, or None if it is not under `root`."""
    step = None
    while pid in table:
        parent, argv, _ = table[pid]
        if step is None and "--function_to_execute" in argv:
            step = argv[argv.index("--function_to_execute") + 1]
        if pid == root:
            return step or "(runner)"
        pid = parent
    return None


def step_peaks(argv: list[str]) -> tuple[dict[str, float], int]:
    """Run argv; each step's peak summed RSS in MB, and the exit code."""
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **QUIET}
    )
    peaks: dict[str, int] = {}
    while proc.poll() is None:
        table = _processes()
        now: dict[str, int] = {}
        for pid, (_, _, rss) in table.items():
            step = _step_of(pid, table, proc.pid)
            if step is not None:
                now[step] = now.get(step, 0) + rss
        for step, rss in now.items():
            peaks[step] = max(peaks.get(step, 0), rss)
        time.sleep(POLL_SECONDS)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} failed: {proc.stderr.read().decode()[-600:]}")
    return {step: rss / 2**20 for step, rss in sorted(peaks.items())}, proc.returncode


def measure(sizes: list[int], scratch: Path) -> dict:
    rows = {}
    for megabytes in sizes:
        model = big_keras_model(scratch / f"dense{megabytes}.keras", megabytes)
        model_mb = model.stat().st_size / 2**20
        base = scratch / f"serving{megabytes}" / "m"
        peaks, _ = step_peaks(
            [*CLI, "run", str(model), "--base-path", str(base), "--pipeline-root", str(scratch / "root")]
        )
        rows[f"{megabytes}"] = {
            "model_mb": round(model_mb, 1),
            "peak_rss_mb": {k: round(v) for k, v in peaks.items()},
            "ratio_to_model": {k: round(v / model_mb, 2) for k, v in peaks.items()},
        }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="50,300", help="model sizes in MB, comma-separated")
    parser.add_argument("--scratch", type=Path, default=None)
    args = parser.parse_args()
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="kfp-tfserving-stepmem-"))
    scratch.mkdir(parents=True, exist_ok=True)
    rows = measure([int(s) for s in args.sizes.split(",")], scratch)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
