"""The export step's logic, without kfp: names kept, parity proven, unsafe models refused."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import served_predict

from kfp_tfserving.components.common.errors import FormatError, UserError
from kfp_tfserving.components.common.saved_model.proto import read_signatures
from kfp_tfserving.components.export_savedmodel.exporter import export_model, parse_feeds
from kfp_tfserving.components.export_savedmodel.parity import compare_outputs, require_parity
from kfp_tfserving.components.load_model.loader import load_source


def _export(source, tmp_path, **options):
    fetched, model_meta, export_meta = tmp_path / "fetched", {}, {}
    load_source(str(source), fetched, model_meta)
    export_model(fetched, model_meta, tmp_path / "exported", export_meta, **options)
    return tmp_path / "exported", export_meta


def test_keras3_export_keeps_input_and_output_layer_names_and_records_parity(tmp_path, keras_two_io):
    exported, meta = _export(keras_two_io, tmp_path)
    sig = read_signatures(exported)["serving_default"]
    assert [s.name for s in sig.inputs] == ["age", "city"]
    assert [s.name for s in sig.outputs] == ["probs", "score"]
    assert all(s.shape[0] is None for s in sig.inputs + sig.outputs)
    assert set(meta["parity"]) == {"probs", "score"}
    assert meta["parity_passed"] is True
    assert all(p["max_abs_diff"] <= 1e-4 for p in meta["parity"].values())
    assert meta["source_format"] == "keras"


def test_keras2_h5_export_is_numerically_the_source_model(tmp_path, keras2_h5):
    import tf_keras

    exported, meta = _export(keras2_h5, tmp_path)
    x = np.random.default_rng(7).random((5, 6), dtype=np.float32)
    want = tf_keras.models.load_model(keras2_h5).predict(x, verbose=0)
    got = served_predict(exported, features=x)["label_probs"]
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert meta["source_format"] == "keras_h5"


def test_tf2_saved_model_without_serving_default_needs_a_choice(tmp_path, tf2_saved_model_no_default):
    with pytest.raises(FormatError, match=r"no serving_default signature and several others.*--signature"):
        _export(tf2_saved_model_no_default, tmp_path)


def test_tf2_saved_model_signature_option_adds_serving_default_and_keeps_the_rest(
    tmp_path, tf2_saved_model_no_default
):
    exported, meta = _export(tf2_saved_model_no_default, tmp_path / "ok", signature="predict")
    assert set(read_signatures(exported)) == {"serving_default", "predict", "embed"}
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(served_predict(exported, x=x)["y"], x @ np.arange(4.0).reshape(4, 1) + 0.5)
    with pytest.raises(FormatError, match="no signature 'nope'"):
        _export(tf2_saved_model_no_default, tmp_path / "bad", signature="nope")


def test_sample_file_is_used_for_parity_and_must_name_every_input(tmp_path, keras_two_io):
    good = tmp_path / "sample.npz"
    np.savez(good, age=np.ones((3, 3), np.float32), city=np.zeros((3, 2), np.float32))
    _, meta = _export(keras_two_io, tmp_path / "a", sample_uri=str(good))
    assert meta["parity_passed"] is True
    partial = tmp_path / "partial.npz"
    np.savez(partial, age=np.ones((3, 3), np.float32))
    with pytest.raises(UserError, match=r"lacks input\(s\) \['city'\]"):
        _export(keras_two_io, tmp_path / "b", sample_uri=str(partial))


@pytest.fixture(scope="module")
def lambda_models(tmp_path_factory, tf):
    import keras
    import tf_keras

    d = tmp_path_factory.mktemp("lambda")
    inp = tf_keras.Input((2,), name="x")
    tf_keras.Model(inp, tf_keras.layers.Lambda(lambda t: t * 3.0, name="triple")(inp)).save(d / "legacy.h5")
    inp3 = keras.Input((2,), name="x")
    keras.Model(inp3, keras.layers.Lambda(lambda t: t * 3.0, name="triple")(inp3)).save(d / "modern.keras")
    return d


@pytest.mark.parametrize("name", ["legacy.h5", "modern.keras"])
def test_models_carrying_python_code_need_explicit_consent(tmp_path, lambda_models, name):
    with pytest.raises(FormatError, match="allow-unsafe-deserialization"):
        _export(lambda_models / name, tmp_path / "refused")
    assert not (tmp_path / "refused" / "exported" / "saved_model.pb").exists()
    exported, _ = _export(lambda_models / name, tmp_path / "allowed", allow_unsafe_deserialization=True)
    out = next(iter(served_predict(exported, x=np.ones((1, 2), np.float32)).values()))
    np.testing.assert_allclose(out, [[3.0, 3.0]])


def test_parity_is_judged_against_absolute_plus_relative_tolerance():
    src = {"y": np.array([1000.0, 1.0])}
    assert compare_outputs(src, {"y": np.array([1000.05, 1.0])}, atol=1e-4, rtol=1e-4)[0].within_tolerance
    bad = compare_outputs(src, {"y": np.array([1000.0, 1.01])}, atol=1e-4, rtol=1e-4)
    assert not bad[0].within_tolerance and bad[0].max_abs_diff == pytest.approx(0.01)
    with pytest.raises(UserError, match="output 'y' differs from the source model by up to 0.01"):
        require_parity(bad, 1e-4, 1e-4)


def test_parity_refuses_nan_shape_changes_missing_outputs_and_changed_integers():
    assert not compare_outputs({"y": np.ones(2)}, {"y": np.array([1.0, np.nan])}, 1, 1)[0].within_tolerance
    assert not compare_outputs({"k": np.array([1, 2])}, {"k": np.array([1, 3])}, 1, 1)[0].within_tolerance
    with pytest.raises(UserError, match="shape"):
        compare_outputs({"y": np.ones((2, 1))}, {"y": np.ones((2,))}, 1, 1)
    with pytest.raises(UserError, match=r"lacks output\(s\) \['z'\]"):
        compare_outputs({"z": np.ones(1)}, {"y": np.ones(1)}, 1, 1)


def test_feed_items_must_be_name_equals_value():
    assert parse_feeds(["keep_prob=1.0", "is_training = false"]) == {
        "keep_prob": "1.0",
        "is_training": "false",
    }
    with pytest.raises(UserError, match="expected NAME=VALUE"):
        parse_feeds(["keep_prob"])
