"""Load a SavedModel in a fresh process and run serving_default on generated inputs.

Run as `python -m kfp_tfserving.components.check_signatures.smoke_run MODEL_DIR`; prints one JSON object.
A fresh process proves the model needs nothing the exporting process had (the source model, custom code).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path


def smoke_run(model_dir: Path, repeats: int = 5) -> dict:
    from kfp_tfserving.components.common.formats.saved_model_io import SERVING_DEFAULT, read_signatures
    from kfp_tfserving.components.common.samples import generate_inputs
    from kfp_tfserving.components.common.tfenv import import_tensorflow

    tf = import_tensorflow()
    signature = read_signatures(model_dir)[SERVING_DEFAULT]
    start = time.perf_counter()
    loaded = tf.saved_model.load(str(model_dir), tags=["serve"])
    load_seconds = time.perf_counter() - start
    fn = loaded.signatures[SERVING_DEFAULT]
    batch = {k: tf.constant(v) for k, v in generate_inputs(signature.inputs, batch=2).items()}
    outputs = fn(**batch)
    latencies = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(**batch)
        latencies.append(time.perf_counter() - t0)
    return {
        "load_seconds": load_seconds,
        "median_latency_ms": statistics.median(latencies) * 1000,
        "output_shapes": {k: list(v.shape) for k, v in outputs.items()},
    }


def main() -> None:
    try:
        result = smoke_run(Path(sys.argv[1]))
    except Exception as err:  # reported to the parent, which turns it into a finding
        result = {
            "error": f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
