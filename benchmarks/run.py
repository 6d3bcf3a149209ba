"""Run the benchmarks side by side, twice in a row, and write results.md and results.json next to this file.

python -m benchmarks.run                 # everything, two consecutive passes (the README's figures)
python -m benchmarks.run --quick         # small sizes, one pass: a smoke run of the harness
python -m benchmarks.run --only publish,latency --passes 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks import bench_end_to_end, bench_large_model, bench_latency, bench_memory, bench_publish, models
from benchmarks.report import write_markdown
from kfp_tfserving.components.common.tfenv import import_tensorflow

HERE = Path(__file__).resolve().parent
SUITES = ("publish", "gcs", "s3", "latency", "end_to_end", "memory")


def one_pass(args, only: list[str], scratch: Path, scale) -> dict:
    out: dict = {}
    pairs = 1 if args.quick else args.pairs
    if "publish" in only:
        out["publish_local"], out["publish_tfx"] = {}, {}
        local_pairs = 1 if args.quick else args.publish_pairs
        big_pairs = 1 if args.quick else args.big_pairs
        for mb, n in ((scale(args.publish_mb), local_pairs), (scale(args.publish_big_mb), big_pairs)):
            model = models.filler_saved_model(scratch / f"fill{mb}", mb)
            rows = bench_publish.local_publish(model, scratch, n, args.memory_state)
            out["publish_local"][f"{mb} MB"] = rows["cp"]
            if "tfx" in rows:
                out["publish_tfx"][f"{mb} MB"] = rows["tfx"]
    for kind in ("gcs", "s3"):
        if kind in only:
            model = models.big_saved_model(scratch / f"sm{scale(args.gcs_mb)}", scale(args.gcs_mb))
            out[f"publish_{kind}"] = {
                "model_mb": scale(args.gcs_mb),
                **bench_publish.object_store_publish(kind, model, pairs),
            }
    if "latency" in only:
        out["latency"] = {
            "keras": bench_latency.keras_case(scratch / "lat", pairs),
            "tf2_saved_model": bench_latency.saved_model_case(scratch / "lat", pairs),
            "tf1_frozen_graph": bench_latency.tf1_case(scratch / "lat", pairs),
            "tf1_frozen_graph, source also a Session callable": bench_latency.tf1_same_call_path_case(
                scratch / "lat", pairs
            ),
        }
        out["latency_c_api"] = bench_latency.c_api_vs_callable_case(scratch / "lat", pairs)
    if "end_to_end" in only:
        model = models.big_keras_model(scratch / f"e2e{scale(args.e2e_mb)}.keras", scale(args.e2e_mb))
        out["end_to_end"] = {
            "model_mb": scale(args.e2e_mb),
            **bench_end_to_end.end_to_end(model, scratch, pairs),
        }
    if "memory" in only:
        sizes = [scale(int(mb)) for mb in args.memory_mb.split(",")]
        sized = {mb: models.filler_saved_model(scratch / f"fill{mb}", mb) for mb in sizes}
        out["memory"] = bench_memory.push_memory(sized, scratch, 1)
    if "large_model" in only:  # not in the default SUITES: builds a 1.6 GB model (--only large_model)
        out["large_model"] = bench_large_model.large_model(scratch, 1.6)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=3, help="ours/reference pairs per measurement")
    # Local copies of a second or so swing with the disk's write-back: more pairs steady their median.
    parser.add_argument("--publish-pairs", type=int, default=5, help="rounds for the 1 GB local publish")
    parser.add_argument("--big-pairs", type=int, default=5, help="rounds for the 5 GB local publish")
    parser.add_argument(
        "--memory-state",
        choices=("settled", "as-is"),
        default="as-is",
        help="local publish: wait before each side until the VM has handed free memory back to its host "
        "(settled), or start at once (as-is; which state a side meets then depends on its warm-up)",
    )
    parser.add_argument("--passes", type=int, default=2, help="consecutive passes (reproducibility)")
    parser.add_argument("--quick", action="store_true", help="small models, one pair, one pass")
    parser.add_argument("--only", default=",".join(SUITES), help=f"comma-separated subset of {SUITES}")
    parser.add_argument("--publish-mb", type=int, default=1024)
    parser.add_argument("--publish-big-mb", type=int, default=5120)
    parser.add_argument("--gcs-mb", type=int, default=1024, help="model size for the GCS and S3 rows")
    parser.add_argument("--e2e-mb", type=int, default=500)
    parser.add_argument("--memory-mb", default="128,1024,2048")
    parser.add_argument(
        "--scratch", type=Path, default=None, help="where models and copies go (default: temp)"
    )
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    import_tensorflow()  # once, quietly, before any suite imports it
    scale = (lambda mb: max(64, mb // 16)) if args.quick else (lambda mb: mb)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="kfp-tfserving-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "node": platform.node()},
        "load_average_at_start": os.getloadavg(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "quick": args.quick,
        "passes": [],
    }
    try:
        for _ in range(1 if args.quick else args.passes):
            started = time.monotonic()
            results["passes"].append(one_pass(args, only, scratch, scale))
            results["passes"][-1]["seconds"] = time.monotonic() - started
            results["passes"][-1]["load_average_after"] = os.getloadavg()
    finally:
        if args.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)
    stem = "results-quick" if args.quick else "results"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    (args.out / f"{stem}.md").write_text(write_markdown(results))
    print((args.out / f"{stem}.md").read_text())


if __name__ == "__main__":
    main()
