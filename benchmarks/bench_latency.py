"""2. The exported serving_default, run as TF Serving runs it (the serving oracle), vs the source model in its
own framework, same inputs, batch 1 and 64: Keras (.keras), a TF2 SavedModel, a TF1 frozen graph."""

from __future__ import annotations

import gc
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.measure import Paired


def load_served(*args, **kwargs):
    # Imported late: importing serving_oracle before the formats package is a circular import.
    from kfp_tfserving.components.common import formats  # noqa: F401
    from kfp_tfserving.components.common.serving_oracle import load_served as load

    return load(*args, **kwargs)


CALLS = 500  # per side and pair
BLOCK = 10  # calls in a row of one side before the other side's turn
WARMUP = 50  # per side: tracing, executor creation and allocator growth are not latency


def _interleaved_ms(ours, ref, calls: int = CALLS) -> tuple[float, float]:
    """Per-call medians (ms) of ours and the reference, run in short alternating blocks (ours, ref, ref,
    ours, ...): a burst of load from elsewhere (tens of ms on this shared machine) lands on both sides'
    samples instead of on one side's whole run. Within a block the model stays hot in the cache, as
    it is on a server answering a stream of requests; a block's first call is one sample in ten."""
    sides = (ours, ref)
    for fn in sides:
        for _ in range(WARMUP):
            fn()
    gc.collect()
    samples: tuple[list[float], list[float]] = ([], [])
    for block in range(calls // BLOCK):
        for side in (0, 1) if block % 2 == 0 else (1, 0):
            fn, out = sides[side], samples[side]
            for _ in range(BLOCK):
                start = time.perf_counter()
                fn()
                out.append(time.perf_counter() - start)
    return statistics.median(samples[0]) * 1000, statistics.median(samples[1]) * 1000


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

    scratch.mkdir(parents=True, exist_ok=True)
    inputs = keras.Input((256,), name="features")
    x = inputs
    for i in range(3):
        x = keras.layers.Dense(512, activation="relu", name=f"hidden_{i}")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="scores")(x))
    source = scratch / "latency.keras"
    model.save(source)
    with load_served(_export(source, scratch / "keras"), replay_warmup=False) as served:
        return _compare(lambda x: model.predict_on_batch(x), lambda x: served.predict({"features": x}), runs)


def _compare(source_call, served_call, runs: int, width: int = 256) -> dict:
    """`runs` pairs of interleaved per-call medians (served export, source); the ratio per pair."""
    out = {}
    for batch in (1, 64):
        x = np.random.default_rng(batch).random((batch, width), dtype=np.float32)
        paired = Paired()
        for _ in range(runs):
            ours, ref = _interleaved_ms(lambda x=x: served_call(x), lambda x=x: source_call(x))
            paired.ours.values.append(ours)
            paired.ref.values.append(ref)
            paired.ratios.values.append(ref / ours)  # Paired's convention: reference / ours
        out[f"batch_{batch}"] = paired.summary("<= 1.05", "time")
    return out


def saved_model_case(scratch: Path, runs: int) -> dict:
    """A TF2 SavedModel: the source called through tf.saved_model.load (TF2's own way), the export served."""
    import tensorflow as tf

    scratch.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    module = tf.Module()
    module.w = [tf.Variable(rng.random((256, 256), dtype=np.float32) * 0.01) for _ in range(3)]

    @tf.function(input_signature=[tf.TensorSpec([None, 256], tf.float32, name="x")])
    def serve(x):
        for w in module.w:
            x = tf.nn.relu(tf.matmul(x, w))
        return {"y": x}

    module.serve = serve
    source = scratch / "tf2_saved_model"
    shutil.rmtree(source, ignore_errors=True)
    tf.saved_model.save(module, str(source), signatures={"serving_default": serve})
    loaded = tf.saved_model.load(str(source)).signatures["serving_default"]
    with load_served(_export(source, scratch / "tf2"), replay_warmup=False) as served:
        return _compare(lambda x: loaded(x=tf.constant(x)), lambda x: served.predict({"x": x}), runs)


def _tf1_frozen_graph(scratch: Path):
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
    return graph, frozen


def tf1_case(scratch: Path, runs: int) -> dict:
    """The source as a TF1 user runs it: session.run on tensor names."""
    import tensorflow as tf

    graph, frozen = _tf1_frozen_graph(scratch)
    session = tf.compat.v1.Session(graph=graph)
    with load_served(_export(frozen, scratch / "tf1"), replay_warmup=False) as served:
        return _compare(lambda x: session.run("y:0", {"x:0": x}), lambda x: served.predict({"x": x}), runs)


def tf1_same_call_path_case(scratch: Path, runs: int) -> dict:
    """Like for like: the source session answers through a C++ Session callable too (the oracle's call
    path), so the ratio is what the export itself costs: graph, restore, signature plumbing."""
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2

    graph, frozen = _tf1_frozen_graph(scratch)
    session = tf.compat.v1.Session(graph=graph)
    source = session._make_callable_from_options(config_pb2.CallableOptions(feed=["x:0"], fetch=["y:0"]))
    with load_served(_export(frozen, scratch / "tf1"), replay_warmup=False) as served:
        return _compare(lambda x: source(x)[0], lambda x: served.predict({"x": x}), runs)


def _tf1_loader_callable(export_dir: Path, signature: str = "serving_default"):
    """The path the oracle answered through before it used the C API, kept as this benchmark's reference:
    the export loaded by TensorFlow's Python TF1 loader into a Session, one C++ Session callable (MakeCallable)
    over the signature's feeds and fetches. Only a latency reference: no verdict comes from it."""
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2

    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(export_dir))
    sig = meta.signature_def[signature]
    keys = sorted(sig.inputs)
    fn = session._make_callable_from_options(
        config_pb2.CallableOptions(
            feed=[sig.inputs[k].name for k in keys], fetch=[t.name for t in sig.outputs.values()]
        )
    )
    return lambda inputs: fn(*[inputs[k] for k in keys])


def c_api_vs_callable_case(scratch: Path, runs: int) -> dict:
    """The same exports, served through the C API (TF_SessionRun, the oracle) vs the TF1 Python loader's
    Session callable (the oracle's previous call path): what answering through the C API costs per request."""
    out = {}
    graph, frozen = _tf1_frozen_graph(scratch)
    del graph
    exported = {"tf1_frozen_graph": _export(frozen, scratch / "tf1")}
    if (scratch / "keras" / "exported").is_dir():  # keras_case ran in this pass: its export is there
        exported["keras"] = scratch / "keras" / "exported"
    for name, export_dir in exported.items():
        with load_served(export_dir, replay_warmup=False) as served:
            key = next(iter(served.signatures["serving_default"].inputs)).name
            reference = _tf1_loader_callable(export_dir)
            out[name] = _compare(
                lambda x, key=key, ref=reference: ref({key: x}),
                lambda x, key=key, served=served: served.predict({key: x}),
                runs,
            )
    return out
