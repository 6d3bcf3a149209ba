"""Keras 2016-2018 files (written with h5py as Keras 2.0-2.2 wrote them) and architecture + weights pairs:
each export is served through the oracle with the numbers the model's own Keras computed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import published_versions, run_cli, served_predict
from keras_legacy_files import (
    gru_case,
    hard_sigmoid_keras3,
    lstm_case,
    sequential_json,
    write_model_h5,
    write_weights_h5,
)
from saved_model_cli_runs import saved_model_cli_run

from kfp_tfserving.components.common.errors import FormatError, StorageError
from kfp_tfserving.components.common.formats import detect_format
from kfp_tfserving.components.common.formats.keras_eras import era_changes, with_era_defaults
from kfp_tfserving.components.export_savedmodel.exporter import export_model
from kfp_tfserving.components.load_model.loader import load_source

X = np.random.default_rng(3).random((4, 5, 3), dtype=np.float32)


def _export(source: Path, tmp_path: Path, weights: Path | None = None, **options):
    fetched, model_meta, export_meta = tmp_path / "fetched", {}, {}
    load_source(str(source), fetched, model_meta, weights_uri=str(weights) if weights else "")
    export_model(fetched, model_meta, tmp_path / "exported", export_meta, **options)
    return tmp_path / "exported", model_meta, export_meta


def _served(exported: Path, x: np.ndarray) -> np.ndarray:
    from kfp_tfserving.components.common.saved_model.proto import read_signatures

    sig = read_signatures(exported)["serving_default"]
    answer = served_predict(exported, **{sig.inputs[0].name: x})
    return answer[sig.outputs[0].name]


def _assert_exported_and_served(source: Path, tmp_path: Path, fmt: str, reference) -> None:
    """Exported as `fmt` with parity, and the served answers are what the model's own Keras computed."""
    exported, model_meta, meta = _export(source, tmp_path)
    assert model_meta["format"] == fmt
    assert meta["parity_passed"] is True
    np.testing.assert_allclose(_served(exported, X), reference(X), atol=1e-5)


@pytest.mark.parametrize(
    ("cls", "version"),
    [("GRU", "2.0.8"), ("GRU", "2.1.2"), ("CuDNNGRU", "2.1.6")],
)
def test_keras2_recurrent_h5_serves_what_its_keras_computed(tmp_path, tf, cls, version):
    layers, weights, reference = gru_case(np.random.default_rng(0), cls=cls)
    h5 = write_model_h5(tmp_path / "gru.h5", sequential_json(layers, version), weights, version)
    _assert_exported_and_served(h5, tmp_path, "keras_h5", reference)


def test_keras2_hard_sigmoid_is_keras2s_not_keras3s(tmp_path, tf):
    layers, weights, reference = lstm_case(np.random.default_rng(1))
    _, _, keras3_reference = lstm_case(np.random.default_rng(1), gate=hard_sigmoid_keras3)
    h5 = write_model_h5(tmp_path / "lstm.h5", sequential_json(layers, "2.2.4"), weights, "2.2.4")
    exported, _, meta = _export(h5, tmp_path)
    served = _served(exported, X)
    np.testing.assert_allclose(served, reference(X), atol=1e-5)
    assert np.abs(served - keras3_reference(X)).max() > 1e-3  # the two formulas differ on these inputs
    assert meta["parity_passed"] is True


def test_era_defaults_complete_and_rename_only_what_the_writer_lacked():
    keras1 = {
        "class_name": "Sequential",
        "config": [
            {
                "class_name": "LSTM",
                "config": {
                    "name": "l",
                    "output_dim": 8,
                    "inner_activation": "hard_sigmoid",
                    "consume_less": "gpu",
                },
            },
            {"class_name": "GRU", "config": {"name": "g", "units": 4, "reset_after": True}},
            {"class_name": "CuDNNLSTM", "config": {"name": "c", "units": 4}},
        ],
    }
    out = with_era_defaults(keras1, "1")
    lstm, gru, cudnn = (layer["config"] for layer in out["config"])
    assert lstm == {"name": "l", "units": 8, "recurrent_activation": "hard_sigmoid", "implementation": 2}
    assert gru["reset_after"] is True  # stored by its writer: kept
    assert out["config"][2]["class_name"] == "LSTM" and cudnn["recurrent_activation"] == "sigmoid"
    assert keras1["config"][0]["config"]["output_dim"] == 8  # the input is not changed
    gru_only = {
        "class_name": "Sequential",
        "config": [{"class_name": "GRU", "config": {"name": "g", "units": 2}}],
    }
    assert era_changes(gru_only, "2.1.2") and not era_changes(gru_only, "2.1.3")
    assert "reset_after" not in with_era_defaults(gru_only, "2.2.0")["config"][0]["config"]
    assert not era_changes(gru_only, "3.1.0")


def test_keras2_json_and_extensionless_weights_in_a_directory(tmp_path, tf):
    layers, weights, reference = gru_case(np.random.default_rng(2))
    pair = tmp_path / "pair"
    pair.mkdir()
    (pair / "model.json").write_text(sequential_json(layers, "2.0.8"))
    write_weights_h5(pair / "weights", weights, "2.0.8")
    handler, entry = detect_format(pair)
    assert (handler.name, entry) == ("keras_architecture_weights", pair)
    _assert_exported_and_served(pair, tmp_path, "keras_architecture_weights", reference)


def test_keras2_yaml_architecture_with_python_tuples(tmp_path, tf):
    layers, weights, reference = gru_case(np.random.default_rng(4))
    doc = json.loads(sequential_json(layers, "2.0.8"))
    doc["config"][0]["config"]["batch_input_shape"] = (None, 5, 3)  # yaml.dump tags tuples python/tuple
    text = yaml.dump(doc)
    assert "!!python/tuple" in text
    pair = tmp_path / "pair"
    pair.mkdir()
    (pair / "model.yaml").write_text(text)
    write_weights_h5(pair / "model_weights.h5", weights, "2.0.8")
    exported, _, meta = _export(pair, tmp_path)
    np.testing.assert_allclose(_served(exported, X), reference(X), atol=1e-5)


def _dense_model(keras_lib):
    features = keras_lib.Input((4,), name="features")
    hidden = keras_lib.layers.Dense(3, activation="relu")(features)
    return keras_lib.Model(features, keras_lib.layers.Dense(2, name="scores")(hidden))


@pytest.mark.parametrize("writer", ["tf_keras", "keras"])
def test_pair_given_explicitly_from_two_places(tmp_path, tf, writer):
    import importlib

    keras_lib = importlib.import_module(writer)
    model = _dense_model(keras_lib)
    (tmp_path / "arch").mkdir()
    (tmp_path / "w").mkdir()
    arch = tmp_path / "arch" / ("model.json" if writer == "tf_keras" else "config.json")
    arch.write_text(model.to_json())
    weights = tmp_path / "w" / ("weights.h5" if writer == "tf_keras" else "model.weights.h5")
    model.save_weights(str(weights))
    exported, model_meta, meta = _export(arch, tmp_path, weights)
    assert model_meta["format"] == "keras_architecture_weights"
    assert model_meta["weights_sha256"] and model_meta["weights_uri"] == str(weights)
    x = np.random.default_rng(5).random((3, 4), dtype=np.float32)
    np.testing.assert_allclose(
        served_predict(exported, features=x)["scores"], np.asarray(model(x)), atol=1e-5
    )
    assert meta["parity_passed"] is True


def test_pair_mistakes_are_one_line_each(tmp_path, tf):
    import tf_keras

    model = _dense_model(tf_keras)
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "model.json").write_text(model.to_json())
    handler, entry = detect_format(lonely)
    with pytest.raises(FormatError, match="without its weights.*--weights"):
        handler.load(
            entry, __import__("kfp_tfserving.components.common.formats", fromlist=["x"]).ExportOptions()
        )

    other = _dense_model(tf_keras)
    wrong = tmp_path / "wrong.h5"
    tf_keras.Sequential([tf_keras.Input((7,)), tf_keras.layers.Dense(5)]).save_weights(str(wrong))
    with pytest.raises(FormatError, match="cannot rebuild"):
        _export(lonely / "model.json", tmp_path / "a", wrong)

    lam = tf_keras.Sequential([tf_keras.Input((2,)), tf_keras.layers.Lambda(lambda t: t * 2)])
    (tmp_path / "lam.json").write_text(lam.to_json())
    other.save_weights(str(tmp_path / "lam_weights.h5"))
    with pytest.raises(FormatError, match="Python code.*allow-unsafe"):
        _export(tmp_path / "lam.json", tmp_path / "b", tmp_path / "lam_weights.h5")

    same = tmp_path / "same"
    same.mkdir()
    (same / "m.json").write_text("{}")
    with pytest.raises(StorageError, match="architecture's file name"):
        load_source(str(lonely / "model.json"), tmp_path / "c", {}, weights_uri=str(lonely / "model.json"))


@pytest.mark.slow
def test_cli_publishes_a_keras2_pair_that_saved_model_cli_answers(tmp_path, tf):
    layers, weights, reference = gru_case(np.random.default_rng(6))
    arch = tmp_path / "model.json"
    arch.write_text(sequential_json(layers, "2.0.8"))
    write_weights_h5(tmp_path / "weights.bin", weights, "2.0.8")
    base = tmp_path / "serving" / "gru"
    proc = run_cli("run", str(arch), "--weights", str(tmp_path / "weights.bin"), "--base-path", str(base))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert published_versions(base) == [1]
    answers = saved_model_cli_run(base / "1", "gru_1_input", X, tmp_path)
    np.testing.assert_allclose(answers["dense_1"], reference(X), atol=1e-5)
