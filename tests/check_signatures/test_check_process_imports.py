"""The check step's fresh process runs every check without TensorFlow's Python runtime (issue 22: pay for
TensorFlow once per step, nothing imported that the step does not use). ml_dtypes is left out too for a
model without bfloat16 tensors: version 0.7 takes about 0.55 s to import."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from kfp_tfserving.components.common.tfenv import QUIET_ENV

PROBE = """
import json, shutil, sys
from pathlib import Path
from kfp_tfserving.components.check_signatures.check_session import Batching, CheckRequest, CheckSession
model, staged = Path(sys.argv[1]), Path(sys.argv[2])
shutil.copytree(model, staged)
outcome = CheckSession(CheckRequest(model, staged, batching=Batching(2.0, write=False))).run()
report = outcome.report.as_dict()
print(json.dumps({
    "passed": report["passed"],
    "fingerprint": outcome.report.runtime.model_fingerprint,
    "warmup": report["runtime"].get("warmup"),
    "batching_ran": "points" in (report["runtime"].get("batching") or {}) or "skipped" in (report["runtime"].get("batching") or {}),
    "modules": sorted(sys.modules),
}))
"""


def test_a_whole_check_imports_no_python_tensorflow_keras_kfp_or_ml_dtypes(tmp_path, keras_two_io):
    import keras

    from kfp_tfserving.components.common.saved_model.fingerprint import model_fingerprint

    model = tmp_path / "exported"
    keras.saving.load_model(keras_two_io).export(str(model), verbose=False)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(model), str(tmp_path / "staged")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **QUIET_ENV},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["passed"] and result["batching_ran"]
    assert result["warmup"]["records"] >= 1
    # Computed without TensorFlow's runtime, equal to the fingerprint computed in this process (which has it).
    assert result["fingerprint"] == model_fingerprint(model).digest
    runtime = [
        m
        for m in result["modules"]
        if m in ("tensorflow", "keras", "tf_keras", "kfp", "ml_dtypes")
        or m.startswith(("tensorflow.python.framework", "tensorflow.python.eager", "keras.", "kfp."))
    ]
    assert runtime == []
