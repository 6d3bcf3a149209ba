"""The example training step: it learns the relation in its data, and refuses bad tables in one line."""

from __future__ import annotations

import numpy as np
import pytest

from kfp_tfserving.components.common.errors import FormatError, UserError
from kfp_tfserving.components.common.formats import detect_format
from kfp_tfserving.components.train_keras_example.trainer import train_example


def _load(artifact_dir):
    import keras

    return keras.saving.load_model(artifact_dir / "model.keras")


def test_generated_data_trains_a_model_that_predicts_unseen_points(tmp_path, tf):
    meta: dict = {}
    figures = train_example(tmp_path / "model", meta, epochs=60, seed=3, generated_rows=400)
    handler, entry = detect_format(tmp_path / "model")
    assert (handler.name, entry.name) == (meta["format"], meta["entry"])
    assert meta["feature_names"] == ["x0", "x1", "x2", "x3"]
    # Fresh points from a known linear relation, not from the trainer's own data.
    rng = np.random.default_rng(99)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    truth = x @ np.array([1.5, -2.0, 0.5, 3.0], np.float32) + 0.7
    predicted = _load(tmp_path / "model").predict(x, verbose=0).ravel()
    assert np.mean(np.abs(predicted - truth)) < 0.25 * np.mean(np.abs(truth - truth.mean()))
    assert figures["val_mae"] < figures["val_mae_predicting_mean"] / 4
    assert figures["train_rows"] + figures["val_rows"] == 400


def test_a_csv_table_with_the_label_in_the_middle(tmp_path, tf):
    rng = np.random.default_rng(0)
    a, b = rng.uniform(-1, 1, 300), rng.uniform(-1, 1, 300)
    target = 2 * a - b
    lines = ["a,target,b"] + [f"{x:.5f},{y:.5f},{z:.5f}" for x, y, z in zip(a, target, b, strict=True)]
    table = tmp_path / "train.csv"
    table.write_text("\n".join(lines) + "\n")
    meta: dict = {}
    train_example(tmp_path / "model", meta, data_uri=str(table), label_column="target", epochs=80)
    assert meta["feature_names"] == ["a", "b"]
    assert meta["source_uri"] == str(table)
    probe = np.array([[0.5, 0.5], [-0.5, 0.25]], np.float32)
    predicted = _load(tmp_path / "model").predict(probe, verbose=0).ravel()
    np.testing.assert_allclose(predicted, [0.5, -1.25], atol=0.2)


@pytest.mark.parametrize(
    "text, complaint",
    [
        ("a,b\n1,2\n3,4\n", "no column 'label' in the header (a, b)"),
        ("a,label\n1,2\n3,x\n", "line 3 has a non-numeric cell"),
        ("a,label\n1,2\n3\n", "line 3 has 1 cells, the header 2"),
        ("a,label\n", "no data rows under the header"),
        ("label\n1\n2\n", "only the label column"),
        ("a,label\n1,nan\n2,3\n", "NaN or infinite"),
    ],
)
def test_bad_tables_name_the_file_and_the_problem(tmp_path, text, complaint):
    table = tmp_path / "bad.csv"
    table.write_text(text)
    with pytest.raises(FormatError) as err:
        train_example(tmp_path / "model", {}, data_uri=str(table))
    line = err.value.one_line()
    assert complaint in line and str(table) in line and "\n" not in line
    assert not (tmp_path / "model").exists()


def test_a_missing_table_is_a_storage_error(tmp_path):
    with pytest.raises(UserError, match="missing.csv"):
        train_example(tmp_path / "model", {}, data_uri=str(tmp_path / "missing.csv"))


@pytest.mark.parametrize(
    "kwargs, complaint",
    [
        ({"epochs": 0}, "epochs=0"),
        ({"validation_fraction": 1.0}, "validation_fraction=1.0"),
        ({"generated_rows": 5}, "generated_rows=5"),
    ],
)
def test_bad_settings_are_refused_before_training(tmp_path, kwargs, complaint):
    with pytest.raises(UserError, match=complaint):
        train_example(tmp_path / "model", {}, **kwargs)
    assert not (tmp_path / "model").exists()
