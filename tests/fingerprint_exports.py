"""Export tiny models of each source kind, as a separate process would: `python fingerprint_exports.py OUT V...`.

The model fingerprint must judge two exports of the same model identical only if they come from separate
processes (within one process TensorFlow's ids keep counting), so the tests run this script twice. Each
variant name is `<source>[-<change>]@<run>`; OUT/<variant> is the SavedModel written.

- keras: a `.keras` file (OUT/model.keras, written once) exported with keras.export.ExportArchive;
- tf_keras: a tf_keras model built in code, written with tf.saved_model.save;
- tf1: a tf.compat.v1 graph (two variables, a constant, vocabulary lookup from an asset) via saved_model.Builder;
- estimator: tf.Example parsing and classify/regress/predict signatures, as an Estimator export writes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402


def _weights(shapes, bump: float = 0.0):
    out = [np.arange(int(np.prod(s)), dtype=np.float32).reshape(s) / 10 for s in shapes]
    out[0].flat[0] += bump
    return out


def keras_export(out: Path, root: Path, change: str) -> None:
    import keras
    import tensorflow as tf

    source = root / "model.keras"
    if not source.exists():
        inputs = keras.Input((4,), name="feat")
        hidden = keras.layers.Dense(3, activation="relu")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(2, name="probs")(hidden))
        model.set_weights(_weights([w.shape for w in model.get_weights()]))
        model.save(source)
    model = keras.models.load_model(source)
    if change == "weight":
        model.set_weights(_weights([w.shape for w in model.get_weights()], bump=1.0))
    output = "scores" if change == "output" else "probs"
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        lambda feat: {output: model(feat)},
        input_signature=[tf.TensorSpec((None, 4), tf.float32, name="feat")],
    )
    archive.write_out(str(out), verbose=False)


def tf_keras_export(out: Path, change: str) -> None:
    import tensorflow as tf
    import tf_keras

    model = tf_keras.Sequential([tf_keras.Input((4,), name="feat"), tf_keras.layers.Dense(2, name="probs")])
    model.set_weights(_weights([w.shape for w in model.get_weights()], bump=1.0 if change == "weight" else 0))
    tf.saved_model.save(model, str(out))


def _vocabulary(out: Path, change: str) -> Path:
    path = out.with_name(f"{out.name}.vocab") / "vocab.txt"  # same base name in every export
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("red\ngreen\nblue\n" if change != "vocab" else "red\nblue\ngreen\n")
    return path


def tf1_export(out: Path, change: str) -> None:
    import tensorflow as tf

    v1 = tf.compat.v1
    with tf.Graph().as_default(), v1.Session() as session:
        x = v1.placeholder(tf.float32, [None, 2], name="x")
        word = v1.placeholder(tf.string, [None], name="word")
        first, second = np.array([[1.0], [2.0]], np.float32), np.array([[3.0], [4.0]], np.float32)
        if change == "swap":  # the same values in other variables: only the restore mapping tells
            first, second = second, first
        w = v1.get_variable("w", initializer=first)
        v = v1.get_variable("v", initializer=second)
        offset = tf.constant(3.0 if change == "constant" else 0.5, name="offset")
        vocab = tf.constant(str(_vocabulary(out, change)), name="vocab_path")
        v1.add_to_collection(v1.GraphKeys.ASSET_FILEPATHS, vocab)
        table = tf.lookup.StaticHashTable(tf.lookup.TextFileInitializer(
            vocab, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER
        ), -1)  # fmt: skip
        y = tf.matmul(x, w) - tf.matmul(x, v) + offset
        signature = v1.saved_model.predict_signature_def(
            {"x": x, "word": word}, {"y": y, "id": table.lookup(word)}
        )
        session.run(v1.global_variables_initializer())
        builder = v1.saved_model.Builder(str(out))
        builder.add_meta_graph_and_variables(
            session,
            ["serve"],
            signature_def_map={"serving_default": signature},
            assets_collection=v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS),
            main_op=v1.tables_initializer(),
        )
        builder.save()


def estimator_export(out: Path, change: str) -> None:
    import tensorflow as tf

    v1 = tf.compat.v1
    with tf.Graph().as_default(), v1.Session() as session:
        examples = v1.placeholder(tf.string, [None], name="input_example_tensor")
        features = v1.io.parse_example(examples, {"age": v1.io.FixedLenFeature([1], tf.float32)})
        w = v1.get_variable("linear/age/weights", initializer=np.array([[0.25]], np.float32))
        b = v1.get_variable(
            "linear/bias_weights", initializer=np.array([0.5 if change != "weight" else 0.75], np.float32)
        )
        logits = tf.matmul(features["age"], w) + b
        probability = tf.sigmoid(logits)
        scores = tf.concat([1 - probability, probability], 1)
        classes = tf.tile(tf.constant([["0", "1"]]), [tf.shape(scores)[0], 1])
        sig = v1.saved_model.signature_def_utils
        signatures = {
            "serving_default": sig.classification_signature_def(examples, classes, scores),
            "classification": sig.classification_signature_def(examples, classes, scores),
            "regression": sig.regression_signature_def(examples, probability),
            "predict": sig.predict_signature_def({"examples": examples}, {"logistic": probability}),
        }
        session.run(v1.global_variables_initializer())
        builder = v1.saved_model.Builder(str(out))
        builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map=signatures)
        builder.save()


def export(root: Path, variant: str) -> None:
    kind, _, change = variant.split("@")[0].partition("-")
    out = root / variant
    if kind == "keras":
        keras_export(out, root, change)
    elif kind == "tf_keras":
        tf_keras_export(out, change)
    elif kind == "tf1":
        tf1_export(out, change)
    elif kind == "estimator":
        estimator_export(out, change)
    else:
        raise SystemExit(f"unknown variant {variant}")


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    for name in sys.argv[2:]:
        export(target, name)
