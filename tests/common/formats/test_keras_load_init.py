"""The Keras 3 load without random draws returns the model Keras's own load returns: saved variables from
the file, variables no file holds from their initializer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kfp_tfserving.components.common.formats.keras_load_init import initial_values_deferred


@pytest.fixture(scope="module")
def keras(tf):
    import keras

    return keras


@pytest.fixture(scope="module")
def unsaved_layer(keras):
    """A layer with a kernel it loads by writing the TensorFlow variable underneath (past Keras's assign)
    and a variable it neither saves nor loads (seeded initializer)."""

    @keras.saving.register_keras_serializable(package="load_init_test")
    class Scaled(keras.layers.Layer):
        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], 3), initializer="glorot_uniform")
            self.scale = self.add_weight(
                shape=(3,), initializer=keras.initializers.RandomUniform(2.0, 3.0, seed=7), trainable=False
            )

        def call(self, x):
            return keras.ops.matmul(x, self.kernel) * self.scale

        def save_own_variables(self, store):
            store["0"] = self.kernel.numpy()

        def load_own_variables(self, store):
            self.kernel.value.assign(store["0"])

    return Scaled


@pytest.fixture(scope="module")
def saved_model_file(keras, unsaved_layer, tmp_path_factory) -> Path:
    inputs = keras.Input((6,), name="features")
    x = keras.layers.Dense(8, activation="relu", name="dense")(inputs)
    x = keras.layers.BatchNormalization(name="norm")(x)
    x = keras.layers.Dropout(0.3, seed=1)(x)
    outputs = unsaved_layer(name="scaled")(x)
    model = keras.Model(inputs, outputs)
    # Moved away from their initial values, so a variable left at zeros or redrawn shows.
    for variable in model.variables:
        variable.assign(np.random.default_rng(0).random(variable.shape).astype(variable.dtype) + 0.5)
    # A saved value of all zeros whose initializer is not ("ones"): assigned through Keras, so it must stay.
    model.get_layer("norm").gamma.assign(np.zeros(8, dtype="float32"))
    path = tmp_path_factory.mktemp("load_init") / "model.keras"
    model.save(path)
    return path


def _values(model) -> list[tuple[str, np.ndarray]]:
    """(layer, value) of every variable in the model's order (variable names are numbered per process)."""
    return [(v.path.split("/")[0].rstrip("_0123456789"), np.asarray(v.numpy())) for v in model.variables]


def test_the_load_equals_keras_own_load(keras, saved_model_file):
    expected = _values(keras.saving.load_model(saved_model_file, compile=False))
    with initial_values_deferred():
        model = keras.saving.load_model(saved_model_file, compile=False)
    got = _values(model)
    assert [layer for layer, _ in got] == [layer for layer, _ in expected]
    for (layer, value), (_, loaded) in zip(expected, got, strict=True):
        np.testing.assert_array_equal(loaded, value, err_msg=layer)
    # The unsaved variable came from its initializer, not from the file and not zeros.
    scale = next(layer.scale.numpy() for layer in [model.get_layer("scaled")])
    assert np.all((scale >= 2.0) & (scale <= 3.0))


def test_saved_variables_come_from_the_file(keras, saved_model_file):
    with initial_values_deferred():
        model = keras.saving.load_model(saved_model_file, compile=False)
    for layer in ("dense", "scaled"):  # through Keras's assign, and past it
        kernel = model.get_layer(layer).kernel.numpy()
        assert np.all(kernel >= 0.5), layer  # the values written before saving, not Glorot's or zeros


def test_outside_the_load_variables_are_drawn_as_usual(keras):
    with initial_values_deferred():
        pass
    layer = keras.layers.Dense(64)
    layer.build((None, 64))
    assert np.count_nonzero(layer.kernel.numpy()) > 64 * 60


def test_a_failed_load_leaves_keras_as_it_was(keras, tmp_path):
    from keras.src.backend.common.variables import Variable as KerasVariable
    from keras.src.backend.tensorflow.core import Variable

    before = (Variable._initialize_with_initializer, KerasVariable.assign)
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"PK\x03\x04 not a zip archive")
    with pytest.raises(Exception), initial_values_deferred():  # noqa: B017 - Keras's own error type
        keras.saving.load_model(broken, compile=False)
    assert (Variable._initialize_with_initializer, KerasVariable.assign) == before
    layer = keras.layers.Dense(16)
    layer.build((None, 16))
    assert np.count_nonzero(layer.kernel.numpy()) > 16 * 12
