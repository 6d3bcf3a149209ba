"""A multi-GB Keras .h5 published end to end: wall time and peak RSS of the whole process tree.

`kfp-tfserving run` (kfp.local: the CLI, one process per step, the check step's fresh process) against a
bare script that loads the same .h5 and exports it in one process. Peak RSS is the largest sum of the
resident sets of the command and all its descendants, sampled from /proc every 50 ms (wait4's ru_maxrss
is per process and would miss a parent and child holding memory at once). Goal: run ≤ 1.2× bare.

    python -m benchmarks.bench_large_model [--gb 1.6] [--scratch DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.measure import QUIET

_PAGE = os.sysconf("SC_PAGE_SIZE")
WIDTH = 8192  # Dense(8192) on 8192 inputs: 268 MB of float32 weights per layer

BUILD = """
import sys, numpy as np, keras
path, layers = sys.argv[1], int(sys.argv[2])
x = keras.Input((WIDTH,), name="features")
h = x
for i in range(layers):
    h = keras.layers.Dense(WIDTH, name=f"dense_{i}")(h)
keras.Model(x, keras.layers.Dense(10, name="logits")(h)).save(path)
""".replace("WIDTH", str(WIDTH))

BARE = """
import sys
from pathlib import Path
import keras
from kfp_tfserving.components.common.formats.keras_export import export_keras
model = keras.saving.load_model(sys.argv[1], compile=False)
export_keras(model, Path(sys.argv[2]))
"""


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return found


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _label(pid: int) -> str:
    """A short name for a process: its Python module or script, as the breakdown shows it."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return str(pid)
    for flag in ("-m", "-c"):
        if flag in argv[:-1]:
            value = argv[argv.index(flag) + 1]
            return value.strip().splitlines()[0][:60] if flag == "-c" else value
    return " ".join(argv[:2])[:60]


def tree_rss(root: int) -> dict[int, int]:
    """The resident set of `root` and of every descendant, now (pid -> bytes)."""
    sizes, stack = {}, [root]
    while stack:
        pid = stack.pop()
        sizes[pid] = _rss(pid)
        stack += _children(pid)
    return sizes


def measure_tree(argv: list[str], env: dict[str, str] | None = None) -> dict:
    """Run argv; its wall time, exit code and the peak resident set of its whole process tree."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **QUIET, **(env or {})},
    )
    peak, at_peak, per_process = 0, {}, {}
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, at_peak
        while not done.is_set():
            sizes = tree_rss(proc.pid)
            for pid, rss in sizes.items():
                key = f"{pid} {_label(pid)}"
                per_process[key] = max(per_process.get(key, 0), rss)
            if sum(sizes.values()) > peak:
                peak = sum(sizes.values())
                at_peak = {f"{pid} {_label(pid)}": rss for pid, rss in sizes.items() if rss}
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} failed ({proc.returncode}): {err.strip()[-800:]}")
    return {
        "seconds": time.perf_counter() - start,
        "peak_rss_bytes": peak,
        "processes_at_peak": at_peak,  # where the memory is at the peak moment
        "peak_per_process": {k: v for k, v in per_process.items() if v > 50 * 2**20},
        "stdout": out,
    }


def build_h5(path: Path, gigabytes: float) -> int:
    """A Keras .h5 with at least `gigabytes` GB of float32 weights (built in a child process)."""
    layers = max(1, int(gigabytes * 1e9 / (WIDTH * WIDTH * 4)) + 1)
    if not path.exists():
        subprocess.run(
            [sys.executable, "-c", BUILD, str(path), str(layers)],
            check=True,
            env={**os.environ, **QUIET},
            capture_output=True,
        )
    return path.stat().st_size


def large_model(scratch: Path, gigabytes: float = 1.6) -> dict:
    """Publish a ≥ `gigabytes` GB .h5 with `kfp-tfserving run`; the bare load + export beside it."""
    model = scratch / f"large-{gigabytes:g}gb.h5"
    size = build_h5(model, gigabytes)
    bare_dir = scratch / "bare-export"
    shutil.rmtree(bare_dir, ignore_errors=True)
    bare = measure_tree([sys.executable, "-c", BARE, str(model), str(bare_dir)])
    shutil.rmtree(bare_dir, ignore_errors=True)
    base = scratch / "serving" / "large"
    shutil.rmtree(base, ignore_errors=True)
    run = measure_tree(
        [
            sys.executable,
            "-m",
            "kfp_tfserving.pipelines.cli",
            "run",
            str(model),
            "--base-path",
            str(base),
            "--json",
        ]
    )
    result = json.loads(run["stdout"].strip().splitlines()[-1])
    shutil.rmtree(scratch / "serving", ignore_errors=True)
    return {
        "model_bytes": size,
        "bare": {k: v for k, v in bare.items() if k != "stdout"},
        "run": {k: v for k, v in run.items() if k != "stdout"},
        "published_version": result.get("version"),
        "rss_ratio": run["peak_rss_bytes"] / bare["peak_rss_bytes"],
        "time_ratio": run["seconds"] / bare["seconds"],
    }


def markdown(result: dict) -> str:
    gb = 1024**3
    return "\n".join(
        [
            f"Large model: {result['model_bytes'] / gb:.2f} GiB Keras .h5 (published as version "
            f"{result['published_version']})",
            "",
            "| | wall time | peak RSS of the process tree |",
            "|---|---|---|",
            f"| bare load + export (one process) | {result['bare']['seconds']:.1f} s | "
            f"{result['bare']['peak_rss_bytes'] / gb:.2f} GiB |",
            f"| `kfp-tfserving run` | {result['run']['seconds']:.1f} s | "
            f"{result['run']['peak_rss_bytes'] / gb:.2f} GiB |",
            f"| ratio (goal: RSS ≤ 1.2×) | {result['time_ratio']:.2f}× | {result['rss_ratio']:.2f}× |",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gb", type=float, default=1.6, help="GB of weights in the generated .h5")
    parser.add_argument("--scratch", type=Path, default=None, help="keep the generated model here")
    args = parser.parse_args()
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="kfp-tfserving-bench-large-"))
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        result = large_model(scratch, args.gb)
    finally:
        if args.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(result, indent=2, sort_keys=True))
    print(markdown(result))


if __name__ == "__main__":
    main()
