"""The push step's process, as a pipeline runs it (the check step computed the model fingerprint), copies
bytes and reads protos: no TensorFlow runtime, no numpy, no kfp (issue 22: nothing imported that a step does
not use)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import push_models

from kfp_tfserving.components.common.tfenv import QUIET_ENV

tiny_models = push_models.tiny_models  # session fixtures: tiny SavedModels
tiny_model = push_models.tiny_model

PROBE = """
import json, sys
from pathlib import Path
from kfp_tfserving.components.push_to_serving.publisher import PushOptions, publish
result = publish(Path(sys.argv[1]), sys.argv[2], source={"model_fingerprint": "tfserving-v1:probe"},
                 options=PushOptions())
print(json.dumps({"version": result.version, "modules": sorted(sys.modules)}))
"""


def test_a_push_imports_no_tensorflow_runtime_numpy_or_kfp(tmp_path, tiny_model):
    base = tmp_path / "serving" / "m"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tiny_model), str(base)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **QUIET_ENV},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (base / str(result["version"]) / "saved_model.pb").is_file()
    # TensorFlow's generated protos (tensorflow.core.*) are read without its runtime (tf_protos.py).
    unused = [
        m
        for m in result["modules"]
        if m.split(".")[0] in ("tensorflow", "numpy", "keras", "tf_keras", "kfp", "grpc")
        and not (m == "tensorflow.core" or m.startswith("tensorflow.core."))
    ]
    assert unused == []
