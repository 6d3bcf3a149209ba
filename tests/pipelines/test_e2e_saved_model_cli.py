"""A user's own proof: TensorFlow's `saved_model_cli run` (a TF1 Session over {serve}, as TF Serving loads a
version) answers every published Keras version with the source model's numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import published_versions, run_cli
from saved_model_cli_runs import saved_model_cli_run

from kfp_tfserving.components.common.saved_model.proto import read_signatures

pytestmark = pytest.mark.slow

X = np.random.default_rng(11).random((2, 5), dtype=np.float32)


def _trained_model(keras_lib):
    """Dense, BatchNormalization (moving statistics trained away from their start), softmax `probs`."""
    features = keras_lib.Input((5,), name="features")
    hidden = keras_lib.layers.BatchNormalization()(keras_lib.layers.Dense(6)(features))
    model = keras_lib.Model(features, keras_lib.layers.Dense(3, activation="softmax", name="probs")(hidden))
    model.compile("sgd", "mse")
    model.fit(X, np.eye(3, dtype=np.float32)[:2], epochs=2, verbose=0)
    return model


def _keras3_file(path: Path) -> Path:
    import keras

    _trained_model(keras).save(path)
    return path


def _keras2_h5(path: Path) -> Path:
    import tf_keras

    _trained_model(tf_keras).save(path, save_format="h5")
    return path


def _source_answer(path: Path) -> np.ndarray:
    if path.suffix == ".keras":
        import keras

        return keras.saving.load_model(path).predict(X, verbose=0)
    import tf_keras

    return tf_keras.models.load_model(path).predict(X, verbose=0)


@pytest.mark.parametrize("build,name", [(_keras3_file, "model.keras"), (_keras2_h5, "model.h5")])
def test_saved_model_cli_answers_a_published_keras_version_like_the_source(build, name, tmp_path, tf):
    source = build(tmp_path / name)
    base = tmp_path / "serving" / "m"
    proc = run_cli("run", str(source), "--base-path", str(base))
    assert proc.returncode == 0, proc.stderr
    assert published_versions(base) == [1]
    answers = saved_model_cli_run(base / "1", "features", X, tmp_path)
    assert set(answers) == {"probs"}
    np.testing.assert_allclose(answers["probs"], _source_answer(source), atol=1e-5)


def test_run_repairs_a_keras3_model_saved_with_tf_saved_model_save(tmp_path, tf):
    keras_file = _keras3_file(tmp_path / "model.keras")
    import keras

    model = keras.saving.load_model(keras_file)
    source = tmp_path / "saved_model"
    tf.saved_model.save(model, str(source))
    base = tmp_path / "serving" / "m"
    proc = run_cli("run", str(source), "--base-path", str(base))
    assert proc.returncode == 0, proc.stderr
    assert "Repaired" in proc.stdout and "never restores" in proc.stdout
    (served_input,) = read_signatures(base / "1")["serving_default"].inputs  # the source's own name
    (answer,) = saved_model_cli_run(base / "1", served_input.name, X, tmp_path).values()
    np.testing.assert_allclose(answer, model.predict(X, verbose=0), atol=1e-5)
