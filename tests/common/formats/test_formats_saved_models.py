"""SavedModel-shaped sources: Estimator exports, TF Hub modules, Keras 2 SavedModels, TFX Trainer output."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import served_predict
from tf1_model_builders import build_estimator_export

from kfp_tfserving.components.common.errors import FormatError
from kfp_tfserving.components.common.formats import detect_format
from kfp_tfserving.components.common.samples import generate_inputs
from kfp_tfserving.components.common.saved_model.edit import signature_methods
from kfp_tfserving.components.common.saved_model.proto import read_saved_model_proto, read_signatures
from kfp_tfserving.components.export_savedmodel.exporter import export_model

CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"
PREDICT = "tensorflow/serving/predict"


def build_tf1_hub_module(tf, path: Path) -> Path:
    """TF1 hub format: tfhub_module.pb, one meta graph with an EMPTY tag-set and a `default` signature."""
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default(), v1.Session() as session:
        text = v1.placeholder(tf.float32, [None, 3], name="text")
        w = v1.get_variable("embed/w", initializer=np.arange(6, dtype=np.float32).reshape(3, 2))
        out = tf.matmul(text, w, name="embed/out")
        session.run(v1.global_variables_initializer())
        info = v1.saved_model.utils.build_tensor_info
        default = v1.saved_model.signature_def_utils.build_signature_def(
            {"default": info(text)}, {"default": info(out)}, PREDICT
        )
        builder = v1.saved_model.Builder(str(path))
        builder.add_meta_graph_and_variables(session, [], signature_def_map={"default": default})
        builder.save()
    (path / "tfhub_module.pb").write_bytes(b"\x08\x03")  # ModuleDef{format: 3}
    return path


def build_keras2_saved_model(path: Path) -> Path:
    import tf_keras

    age = tf_keras.Input((3,), name="age")
    hidden = tf_keras.layers.Dense(4, activation="relu")(age)
    score = tf_keras.layers.Dense(2, name="score")(hidden)
    tf_keras.Model(age, score).save(str(path), save_format="tf")
    return path


def _export(source: Path, tmp_path: Path, model_format: str = "", **kwargs) -> tuple[Path, dict]:
    export_dir, metadata = tmp_path / "export", {}
    loaded_as = {"format": model_format, "entry": "."} if model_format else {}
    export_model(source, loaded_as, export_dir, metadata, **kwargs)
    return export_dir, metadata


@pytest.fixture(scope="module")
def estimator_base(tmp_path_factory, tf) -> Path:
    return build_estimator_export(tf, tmp_path_factory.mktemp("estimator") / "export" / "exporter")


def test_estimator_newest_timestamp_keeps_classify_and_regress_method_names(tmp_path, estimator_base, tf):
    handler, entry = detect_format(estimator_base)
    assert (handler.name, entry.name) == ("estimator", "1700000000")
    export_dir, metadata = _export(estimator_base, tmp_path)
    methods = signature_methods(export_dir)
    assert methods == {
        "serving_default": CLASSIFY,
        "classification": CLASSIFY,
        "regression": REGRESS,
        "predict": PREDICT,
    }
    assert metadata["parity_passed"] and set(metadata["parity"]) == {"classes", "scores"}
    # The published model carries the newest export's weights (0.5), not the older one's (-5).
    (examples,) = generate_inputs(read_signatures(export_dir)["serving_default"].inputs).values()
    served = served_predict(export_dir, "regression", inputs=examples)["outputs"]
    parsed = tf.io.parse_example(
        examples,
        {
            "age": tf.io.FixedLenFeature([1], tf.float32),
            "rooms": tf.io.FixedLenFeature([2], tf.int64),
            "city": tf.io.VarLenFeature(tf.string),
        },
    )
    lengths = tf.sparse.reduce_sum(tf.sparse.map_values(tf.strings.length, parsed["city"]), 1).numpy()
    expected = parsed["age"].numpy()[:, 0] * 0.5 + parsed["rooms"].numpy().sum(1) * 0.1 - lengths * 0.01
    np.testing.assert_allclose(served[:, 0], expected, rtol=1e-5)


def test_generated_inputs_for_an_example_signature_are_parseable_examples(estimator_base):
    spec = read_signatures(estimator_base / "1700000000")["serving_default"].inputs[0]
    assert {f.name: (f.dtype, f.shape) for f in spec.example_features} == {
        "age": ("float32", (1,)),
        "rooms": ("int64", (2,)),
        "city": ("string", None),
    }
    from tensorflow.core.example import example_pb2

    (batch,) = generate_inputs([spec], batch=3).values()
    assert batch.shape == (3,)
    example = example_pb2.Example.FromString(batch[0])
    assert len(example.features.feature["rooms"].int64_list.value) == 2
    assert len(example.features.feature["age"].float_list.value) == 1


def test_raw_receiver_regressor_gains_serving_default_and_keeps_predict(tmp_path, tf):
    base = build_estimator_export(tf, tmp_path / "regressor", signatures="predict-only")
    export_dir, metadata = _export(base, tmp_path)
    assert signature_methods(export_dir) == {"predict": PREDICT, "serving_default": PREDICT}
    assert metadata["parity_passed"] and set(metadata["parity"]) == {"predictions"}


def test_estimator_signature_flag_chooses_what_serving_default_serves(tmp_path, estimator_base):
    timestamp = tmp_path / "copy"
    shutil.copytree(estimator_base / "1700000000", timestamp)
    proto = read_saved_model_proto(timestamp)
    del proto.meta_graphs[0].signature_def["serving_default"]
    (timestamp / "saved_model.pb").write_bytes(proto.SerializeToString())
    # Several signatures and no default: `predict` serves unless --signature names another.
    export_dir, _ = _export(timestamp, tmp_path / "a")
    assert signature_methods(export_dir)["serving_default"] == PREDICT
    assert signature_methods(export_dir)["classification"] == CLASSIFY
    export_dir, _ = _export(timestamp, tmp_path / "b", signature="regression")
    assert signature_methods(export_dir)["serving_default"] == REGRESS
    with pytest.raises(FormatError, match="no signature 'nope'"):
        _export(timestamp, tmp_path / "c", signature="nope")


def test_tf1_hub_module_empty_tag_set_becomes_serve_with_serving_default(tmp_path, tf):
    module = build_tf1_hub_module(tf, tmp_path / "hub_module")
    assert detect_format(module)[0].name == "hub"
    export_dir, metadata = _export(module, tmp_path)
    proto = read_saved_model_proto(export_dir)
    assert [list(m.meta_info_def.tags) for m in proto.meta_graphs] == [["serve"]]
    signature = read_signatures(export_dir)["serving_default"]
    assert ([s.name for s in signature.inputs], [s.name for s in signature.outputs]) == (
        ["default"],
        ["default"],
    )
    assert metadata["parity_passed"]
    x = np.ones((2, 3), dtype=np.float32)
    served = served_predict(export_dir, default=x)
    np.testing.assert_allclose(served["default"], x @ np.arange(6).reshape(3, 2))


def test_tf2_saved_model_served_with_format_hub(tmp_path, tf2_saved_model):
    export_dir, metadata = _export(tf2_saved_model, tmp_path, model_format="hub")
    assert metadata["source_format"] == "hub" and metadata["parity_passed"]
    assert {"serving_default", "embed"} <= set(read_signatures(export_dir))


def test_keras2_saved_model_keeps_its_signature_names(tmp_path, tf):
    source = build_keras2_saved_model(tmp_path / "keras2_sm")
    handler, _ = detect_format(source)
    assert handler.name == "keras_saved_model"
    source_sig = read_signatures(source)["serving_default"]
    export_dir, metadata = _export(source, tmp_path)
    exported = read_signatures(export_dir)["serving_default"]
    assert [s.name for s in exported.inputs] == [s.name for s in source_sig.inputs] == ["age"]
    assert [s.name for s in exported.outputs] == [s.name for s in source_sig.outputs] == ["score"]
    assert metadata["parity_passed"] and set(metadata["parity"]) == {"score"}


def test_tfx_trainer_output_serves_its_format_serving_model(tmp_path, tf):
    artifact = tmp_path / "Trainer" / "model" / "7"
    build_estimator_export(tf, tmp_path / "est")
    shutil.copytree(tmp_path / "est" / "1700000000", artifact / "Format-Serving")
    (artifact / "Format-Serving-metadata.json").write_text("{}")  # siblings must not confuse detection
    handler, entry = detect_format(artifact)
    assert (handler.name, entry.name) == ("tfx_trainer", "Format-Serving")
    export_dir, metadata = _export(artifact, tmp_path)
    assert metadata["source_format"] == "tfx_trainer" and metadata["parity_passed"]
    assert signature_methods(export_dir)["classification"] == CLASSIFY


def test_tfx_artifact_without_a_saved_model_is_refused(tmp_path):
    (tmp_path / "artifact" / "Format-Serving").mkdir(parents=True)
    (tmp_path / "artifact" / "Format-Serving" / "notes.txt").write_text("empty")
    with pytest.raises(FormatError, match="no SavedModel inside the TFX Model artifact"):
        _export(tmp_path / "artifact", tmp_path)


def test_tf2_hub_module_without_signatures_serves_its_inference_call(tmp_path, tf):
    class Embedder(tf.Module):
        def __init__(self):
            self.w = tf.Variable([[1.0, 0.0], [2.0, -1.0]])

        @tf.function
        def __call__(self, tokens, training=False):
            return tf.matmul(tokens, self.w) * (10.0 if training else 1.0)

    module = Embedder()
    module.__call__.get_concrete_function(tf.TensorSpec([None, 2], tf.float32, name="tokens"), training=False)
    module.__call__.get_concrete_function(tf.TensorSpec([None, 2], tf.float32, name="tokens"), training=True)
    source = tmp_path / "tf2_hub"
    tf.saved_model.save(module, str(source))
    assert read_signatures(source) == {}
    export_dir, metadata = _export(source, tmp_path)
    signature = read_signatures(export_dir)["serving_default"]
    assert ([s.name for s in signature.inputs], [s.name for s in signature.outputs]) == (
        ["tokens"],
        ["outputs"],
    )
    assert metadata["parity_passed"]
    x = np.array([[1.0, 1.0]], dtype=np.float32)
    served = served_predict(export_dir, tokens=x)
    np.testing.assert_allclose(served["outputs"], [[3.0, -1.0]])  # training=False: no x10


def test_saved_model_with_neither_signatures_nor_call_is_refused(tmp_path, tf):
    module = tf.Module()
    module.v = tf.Variable(1.0)
    tf.saved_model.save(module, str(tmp_path / "bare"))
    with pytest.raises(FormatError, match="no signatures and no callable __call__"):
        _export(tmp_path / "bare", tmp_path)


def test_timestamped_tf2_saved_models_without_default_are_re_saved_loadably(
    tmp_path, tf2_saved_model_no_default
):
    shutil.copytree(tf2_saved_model_no_default, tmp_path / "exports" / "1700000001")
    shutil.copytree(tf2_saved_model_no_default, tmp_path / "exports" / "900")
    handler, entry = detect_format(tmp_path / "exports")
    assert (handler.name, entry.name) == ("estimator", "1700000001")
    export_dir, metadata = _export(tmp_path / "exports", tmp_path, signature="predict")
    assert metadata["parity_passed"] and set(metadata["parity"]) == {"y"}
    assert {"serving_default", "predict", "embed"} <= set(read_signatures(export_dir))
