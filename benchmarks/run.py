"""Run the benchmarks side by side and write results.md and results.json next to this file.

python -m benchmarks.run                 # everything, 5 runs each (the README's figures)
python -m benchmarks.run --quick         # small sizes, 2 runs: a smoke run of the harness
python -m benchmarks.run --only publish,latency
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks import bench_end_to_end, bench_large_model, bench_latency, bench_memory, bench_publish, models
from benchmarks.report import write_markdown
from kfp_tfserving.components.common.tfenv import import_tensorflow

HERE = Path(__file__).resolve().parent
SUITES = ("publish", "gcs", "latency", "end_to_end", "memory")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small models and 2 runs")
    parser.add_argument("--only", default=",".join(SUITES), help=f"comma-separated subset of {SUITES}")
    parser.add_argument("--publish-mb", type=int, default=1024)
    parser.add_argument("--gcs-mb", type=int, default=1024)
    parser.add_argument("--e2e-mb", type=int, default=500)
    parser.add_argument("--memory-mb", default="100,1024,2048")
    parser.add_argument(
        "--scratch", type=Path, default=None, help="where models and copies go (default: a temp dir)"
    )
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    import_tensorflow()  # once, quietly, before any suite imports it
    runs = 2 if args.quick else args.runs
    scale = (lambda mb: max(16, mb // 16)) if args.quick else (lambda mb: mb)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="kfp-tfserving-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "machine": {
            "python": platform.python_version(),
            "cpus": __import__("os").cpu_count(),
            "node": platform.node(),
        },
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "runs": runs,
        "quick": args.quick,
    }
    try:
        if "publish" in only:
            model = models.big_saved_model(scratch / f"sm{scale(args.publish_mb)}", scale(args.publish_mb))
            results["publish_local"] = {
                "model_mb": scale(args.publish_mb),
                **bench_publish.local_publish(model, scratch, runs),
            }
        if "gcs" in only:
            model = models.big_saved_model(scratch / f"sm{scale(args.gcs_mb)}", scale(args.gcs_mb))
            results["publish_gcs"] = {
                "model_mb": scale(args.gcs_mb),
                **bench_publish.gcs_publish(model, runs),
            }
        if "latency" in only:
            results["latency"] = {
                "keras": bench_latency.keras_case(scratch / "lat", runs),
                "tf1_frozen_graph": bench_latency.tf1_case(scratch / "lat", runs),
            }
        if "end_to_end" in only:
            model = models.big_keras_model(scratch / f"e2e{scale(args.e2e_mb)}.keras", scale(args.e2e_mb))
            results["end_to_end"] = {
                "model_mb": scale(args.e2e_mb),
                **bench_end_to_end.end_to_end(model, scratch, runs),
            }
        if "memory" in only:
            sizes = [scale(int(mb)) for mb in args.memory_mb.split(",")]
            sized = {mb: models.big_saved_model(scratch / f"sm{mb}", mb) for mb in sizes}
            results["memory"] = bench_memory.push_memory(sized, scratch, runs)
        if "large_model" in only:  # not in the default SUITES: builds a 1.6 GB model (--only large_model)
            results["large_model"] = bench_large_model.large_model(scratch, 1.6)
    finally:
        if args.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)
    stem = "results-quick" if args.quick else "results"
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    (args.out / f"{stem}.md").write_text(write_markdown(results))
    print((args.out / f"{stem}.md").read_text())


if __name__ == "__main__":
    main()
