"""Large generated models for the benchmarks, made once per run and reused."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def big_saved_model(path: Path, megabytes: int) -> Path:
    """A TF2 SavedModel whose variables total about `megabytes` MB (random, so nothing compresses)."""
    if (path / "saved_model.pb").exists():
        return path
    import numpy as np
    import tensorflow as tf

    floats_per_chunk = 16 * 1024 * 1024 // 4  # 16 MB variables
    chunks = max(1, megabytes // 16)
    rng = np.random.default_rng(0)
    module = tf.Module()
    module.weights = [tf.Variable(rng.random(floats_per_chunk, dtype=np.float32)) for _ in range(chunks)]

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def serve(x):
        total = tf.add_n([w[0] for w in module.weights])
        return {"y": x * total}

    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return path


def big_keras_model(path: Path, megabytes: int) -> Path:
    """A Keras 3 .keras functional model with named input/output, about `megabytes` MB of weights."""
    if path.exists():
        return path
    import keras

    width = 1024
    per_layer_mb = width * width * 4 / 1e6
    layers = max(1, round(megabytes / per_layer_mb))
    inputs = keras.Input((width,), name="features")
    x = inputs
    for i in range(layers):
        x = keras.layers.Dense(width, activation="relu", name=f"dense_{i}")(x)
    outputs = keras.layers.Dense(8, activation="softmax", name="scores")(x)
    keras.Model(inputs, outputs).save(path)
    return path


def filler_saved_model(path: Path, megabytes: int, seed: int = 0) -> Path:
    """A SavedModel-shaped tree of `megabytes` random bytes (saved_model.pb + one variables shard + index).

    For publish sizes (5 GB) a real SavedModel would need the weights in memory twice to write; a push
    neither parses nor loads the files, so random bytes of the same layout measure the same thing.
    """
    if (path / "saved_model.pb").exists():
        return path
    import numpy as np

    rng = np.random.default_rng(seed)
    (path / "variables").mkdir(parents=True, exist_ok=True)
    (path / "saved_model.pb").write_bytes(rng.bytes(200_000))
    (path / "variables" / "variables.index").write_bytes(rng.bytes(10_000))
    with open(path / "variables" / "variables.data-00000-of-00001", "wb") as f:
        for _ in range(megabytes // 64):
            f.write(rng.bytes(64 * 2**20))
    return path
