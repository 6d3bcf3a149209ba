"""TF1 models the tests build: a classifier as a frozen graph and as a training checkpoint, and an
Estimator-shaped export base. Shared by the format tests and the end-to-end runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

W = np.array([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0], [2.0, 0.0, 1.0]], dtype=np.float32)


def classifier_graph(tf, train: bool):
    """x -> softmax(x @ w * temperature * gain): 'temperature' a Placeholder, 'gain' a PlaceholderWithDefault."""
    v1 = tf.compat.v1
    x = v1.placeholder(tf.float32, [None, 3], name="x")
    temperature = v1.placeholder(tf.float32, [], name="temperature")
    gain = v1.placeholder_with_default(1.0, [], name="gain")
    w = v1.get_variable("dense/w", initializer=W)
    logits = tf.identity(tf.matmul(x, w) * temperature * gain, name="dense/logits")
    probs = tf.nn.softmax(logits, name="probs")
    if train:
        labels = v1.placeholder(tf.int64, [None], name="labels")
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        v1.train.GradientDescentOptimizer(0.1).minimize(
            loss, global_step=v1.train.get_or_create_global_step()
        )
    return probs


def build_frozen_graph(tf, path: Path) -> Path:
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default(), v1.Session() as session:
        classifier_graph(tf, train=False)
        session.run(v1.global_variables_initializer())
        frozen = v1.graph_util.convert_variables_to_constants(session, graph.as_graph_def(), ["probs"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(frozen.SerializeToString())
    return path


def build_checkpoint(tf, directory: Path, prefix: str = "") -> Path:
    """A training checkpoint with optimizer and saver ops, an empty prefix by default, a stale state file,
    and `_output_shapes` attributes that contradict the graph (as an older TF's could)."""
    v1 = tf.compat.v1
    directory.mkdir(parents=True, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default(), v1.Session() as session:
        classifier_graph(tf, train=True)
        session.run(v1.global_variables_initializer())
        v1.train.Saver().save(session, f"{directory}/{prefix}")
    from tensorflow.core.protobuf import meta_graph_pb2

    meta_path = directory / f"{prefix}.meta"
    meta = meta_graph_pb2.MetaGraphDef.FromString(meta_path.read_bytes())
    for node in meta.graph_def.node:
        if node.name == "x":  # recorded as rank 1 where the placeholder is [None, 3]
            node.attr["_output_shapes"].list.Clear()
            node.attr["_output_shapes"].list.shape.add().dim.add().size = 7
    meta_path.write_bytes(meta.SerializeToString())
    (directory / "checkpoint").write_text(
        f'model_checkpoint_path: "/home/someone-else/run-42/{prefix}"\n'
        f'all_model_checkpoint_paths: "/home/someone-else/run-42/{prefix}"\n'
    )
    return directory


def _estimator_graph(tf, weight: float):
    """Serialized tf.Example in ('inputs'), parsed like an Estimator's example receiver."""
    v1 = tf.compat.v1
    examples = v1.placeholder(tf.string, [None], name="input_example_tensor")
    features = tf.io.parse_example(
        examples,
        {
            "age": tf.io.FixedLenFeature([1], tf.float32),
            "rooms": tf.io.FixedLenFeature([2], tf.int64),
            "city": tf.io.VarLenFeature(tf.string),
        },
    )
    w = v1.get_variable("linear/w", initializer=np.float32(weight))
    city_count = tf.cast(
        tf.sparse.reduce_sum(tf.sparse.map_values(tf.strings.length, features["city"]), 1), tf.float32
    )
    rooms = tf.cast(tf.reduce_sum(features["rooms"], axis=1), tf.float32)
    logit = features["age"][:, 0] * w + rooms * 0.1 - city_count * 0.01
    scores = tf.stack([tf.sigmoid(-logit), tf.sigmoid(logit)], axis=1, name="head/scores")
    classes = tf.tile(tf.constant([[b"no", b"yes"]]), [tf.shape(scores)[0], 1], name="head/classes")
    return examples, scores, classes, tf.reshape(logit, [-1, 1], name="head/predictions")


def build_estimator_export(tf, base: Path, signatures: str = "full") -> Path:
    """An Estimator-shaped export base: an older and a newer timestamp, and an unfinished temp-* export."""
    v1 = tf.compat.v1
    sig = v1.saved_model.signature_def_utils
    for stamp, weight in (("1600000000", -5.0), ("1700000000", 0.5)):
        graph = tf.Graph()
        with graph.as_default(), v1.Session() as session:
            examples, scores, classes, predictions = _estimator_graph(tf, weight)
            session.run(v1.global_variables_initializer())
            if signatures == "full":
                classify = sig.classification_signature_def(examples, classes, scores)
                signature_map = {
                    "serving_default": classify,
                    "classification": classify,
                    "regression": sig.regression_signature_def(examples, predictions),
                    "predict": sig.predict_signature_def({"examples": examples}, {"scores": scores}),
                }
            else:  # a raw-receiver regressor: one predict signature, no serving_default
                signature_map = {
                    "predict": sig.predict_signature_def({"examples": examples}, {"predictions": predictions})
                }
            builder = v1.saved_model.Builder(str(base / stamp))
            builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map=signature_map)
            builder.save()
    (base / "temp-1800000000").mkdir()
    (base / "temp-1800000000" / "saved_model.pb").write_bytes(b"half-written")
    return base
