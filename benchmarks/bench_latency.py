"""2. The exported serving_default vs the source model, same inputs, batch 1 and 64."""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.measure import Series

CALLS = 500


def _per_call_ms(fn, calls: int = CALLS) -> float:
    for _ in range(10):  # warm-up: tracing and allocator growth are not latency
        fn()
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def _export(source: Path, scratch: Path) -> Path:
    from kfp_tfserving.components.export_savedmodel.exporter import export_model
    from kfp_tfserving.components.load_model.loader import load_source

    shutil.rmtree(scratch, ignore_errors=True)  # a kept --scratch holds the last run's export
    fetched, meta = scratch / "fetched", {}
    load_source(str(source), fetched, meta)
    export_model(fetched, meta, scratch / "exported", {})
    return scratch / "exported"


def keras_case(scratch: Path, runs: int) -> dict:
    import keras
    import tensorflow as tf

    scratch.mkdir(parents=True, exist_ok=True)
    inputs = keras.Input((256,), name="features")
    x = inputs
    for i in range(3):
        x = keras.layers.Dense(512, activation="relu", name=f"hidden_{i}")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="scores")(x))
    source = scratch / "latency.keras"
    model.save(source)
    exported = tf.saved_model.load(str(_export(source, scratch / "keras")))
    serve = exported.signatures["serving_default"]
    out = {}
    for batch in (1, 64):
        x = np.random.default_rng(batch).random((batch, 256), dtype=np.float32)
        tx = tf.constant(x)
        src, exp = Series(), Series()
        for _ in range(runs):
            src.values.append(_per_call_ms(lambda x=x: model.predict_on_batch(x)))
            exp.values.append(_per_call_ms(lambda tx=tx: serve(features=tx)))
        out[f"batch_{batch}"] = {
            "source_ms": src.summary(),
            "exported_ms": exp.summary(),
            "latency_ratio": exp.median / src.median,
            "goal": "<= 1.05",
        }
    return out


def tf1_case(scratch: Path, runs: int) -> dict:
    import tensorflow as tf

    scratch.mkdir(parents=True, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 256], name="x")
        h = x
        rng = np.random.default_rng(0)
        for i in range(3):
            w = tf.constant(rng.random((256, 256), dtype=np.float32) * 0.01)
            h = tf.nn.relu(tf.matmul(h, w), name=f"layer_{i}")
        tf.identity(h, name="y")
    frozen = scratch / "frozen.pb"
    frozen.write_bytes(graph.as_graph_def().SerializeToString())
    # Measured as TF Serving runs it: a session over the exported graph, fed by the signature's tensor names.
    exported_dir = _export(frozen, scratch / "tf1")
    exported_graph = tf.Graph()
    exported_session = tf.compat.v1.Session(graph=exported_graph)
    with exported_graph.as_default():
        meta = tf.compat.v1.saved_model.loader.load(exported_session, ["serve"], str(exported_dir))
    signature = meta.signature_def["serving_default"]
    feed_name, fetch_name = signature.inputs["x"].name, signature.outputs["y"].name
    session = tf.compat.v1.Session(graph=graph)
    out = {}
    for batch in (1, 64):
        data = np.random.default_rng(batch).random((batch, 256), dtype=np.float32)
        src, exp = Series(), Series()
        for _ in range(runs):
            src.values.append(_per_call_ms(lambda data=data: session.run("y:0", {"x:0": data})))
            exp.values.append(
                _per_call_ms(lambda data=data: exported_session.run(fetch_name, {feed_name: data}))
            )
        out[f"batch_{batch}"] = {
            "source_ms": src.summary(),
            "exported_ms": exp.summary(),
            "latency_ratio": exp.median / src.median,
            "goal": "<= 1.05",
        }
    return out
