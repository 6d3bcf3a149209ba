"""Does the batching measurement repeat? The check step's sweep, decision and load test, N times on one model.

python -m benchmarks.bench_batching SAVED_MODEL_DIR [--runs 5] [--serving-cpus N] [--json FILE]

Each run is the check as `kfp-tfserving check --batching` runs it (a fresh process, the model loaded through
the serving oracle, nothing written), so a run sees what the check step sees. Prints per run the sweep's
choice, the load test's ratio and the verdict (max_batch_size or "no file"), the seconds the measurement
took, and the machine's load average; the goal is the same verdict in every run (issue 23: 5 of 5).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from pathlib import Path


def one_run(model: Path, serving_cpus: int) -> dict:
    from kfp_tfserving.components.check_signatures.batching import DEFAULT_BUDGET_SECONDS
    from kfp_tfserving.components.check_signatures.check_session import Batching
    from kfp_tfserving.components.check_signatures.check_step import run_check

    load = os.getloadavg()[0]
    measure = Batching(DEFAULT_BUDGET_SECONDS, serving_cpus, write=False)
    outcome = run_check(model, batching=measure)
    batching = outcome.report.runtime.batching or {}
    load_test = batching.get("load_test", {})
    return {
        "verdict": batching["parameters"]["max_batch_size"] if batching.get("publish") else "no file",
        "sweep_choice": batching.get("parameters", {}).get("max_batch_size", 1),
        "load_ratio": load_test.get("throughput_ratio"),
        "seconds": outcome.phase_seconds.get("batching_sweep"),
        "load_average": round(load, 2),
        "decision": batching.get("decision") or batching.get("skipped"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--serving-cpus", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    runs = []
    for i in range(args.runs):
        started = time.perf_counter()
        runs.append(one_run(args.model, args.serving_cpus))
        r = runs[-1]
        ratio = f"{r['load_ratio']:.2f}x" if r["load_ratio"] else "-"
        print(
            f"run {i + 1}: verdict {r['verdict']} (sweep {r['sweep_choice']}, load test {ratio}); "
            f"measurement {r['seconds']} s, run {time.perf_counter() - started:.0f} s, load {r['load_average']}",
            flush=True,
        )
    verdicts = Counter(str(r["verdict"]) for r in runs)
    top, count = verdicts.most_common(1)[0]
    print(f"same verdict in {count} of {len(runs)} runs ({top}); all: {dict(verdicts)}")
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
