"""Tiny SavedModels for the push tests (a tf.Module with one variable), built once per session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def save_tiny_model(path: Path, scale: float) -> Path:
    """serving_default(x: float32[?, 2]) -> {"y": x @ [scale, 1]^T}; different scales, different content."""
    from kfp_tfserving.components.common.tfenv import import_tensorflow

    tf = import_tensorflow()
    module = tf.Module()
    module.w = tf.Variable(np.array([[scale], [1.0]], dtype=np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def predict(x):
        return {"y": tf.matmul(x, module.w)}

    module.predict = predict
    tf.saved_model.save(module, str(path), signatures={"serving_default": predict})
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> list[Path]:
    """Eight tiny SavedModels with distinct content."""
    root = tmp_path_factory.mktemp("tiny_models")
    return [save_tiny_model(root / f"m{i}", float(i + 2)) for i in range(8)]


@pytest.fixture(scope="session")
def tiny_model(tiny_models) -> Path:
    return tiny_models[0]


def start_waiting_child(code: str, *args: str) -> subprocess.Popen:
    """A Python process running `code` that has done its imports, said "ready", and waits for go()."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc


def go(proc: subprocess.Popen) -> None:
    proc.stdin.write("go\n")
    proc.stdin.flush()
