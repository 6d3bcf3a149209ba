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


def _servable_proto() -> bytes:
    """A saved_model.pb that passes the push's own check: {serve} with serving_default (x -> y)."""
    from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

    meta = meta_graph_pb2.MetaGraphDef()
    meta.meta_info_def.tags.append("serve")
    signature = meta.signature_def["serving_default"]
    signature.method_name = "tensorflow/serving/predict"
    signature.inputs["x"].name = "x:0"
    signature.outputs["y"].name = "y:0"
    return saved_model_pb2.SavedModel(meta_graphs=[meta]).SerializeToString()


def filler_saved_model(path: Path, megabytes: int, seed: int = 0) -> Path:
    """A SavedModel-shaped tree of `megabytes` random bytes (a servable saved_model.pb + one variables shard
    + index).

    For publish sizes (5 GB) a real SavedModel would need the weights in memory twice to write; a push
    checks the proto and the shards' presence but never loads the weights, so random bytes of the same
    layout measure the same thing.
    """
    if (path / "saved_model.pb").exists():
        return path
    import numpy as np

    rng = np.random.default_rng(seed)
    (path / "variables").mkdir(parents=True, exist_ok=True)
    (path / "saved_model.pb").write_bytes(_servable_proto())
    (path / "variables" / "variables.index").write_bytes(rng.bytes(10_000))
    with open(path / "variables" / "variables.data-00000-of-00001", "wb") as f:
        for _ in range(megabytes // 64):
            f.write(rng.bytes(64 * 2**20))
    return path
