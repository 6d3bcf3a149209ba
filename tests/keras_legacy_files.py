"""Keras 1/2-era files written byte by byte with h5py, as Keras 2.0-2.2 wrote them, and numpy references of
what those Keras versions computed (independent of any Keras installed here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

GLOROT = {
    "class_name": "VarianceScaling",
    "config": {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": None},
}
ORTHOGONAL = {"class_name": "Orthogonal", "config": {"gain": 1.0, "seed": None}}
ZEROS = {"class_name": "Zeros", "config": {}}


def hard_sigmoid_keras2(x):
    return np.clip(0.2 * x + 0.5, 0.0, 1.0)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def recurrent_config(cls: str, name: str, units: int, input_shape, **extra) -> dict:
    config = {
        "name": name,
        "trainable": True,
        "batch_input_shape": [None, *input_shape],
        "dtype": "float32",
        "return_sequences": False,
        "return_state": False,
        "go_backwards": False,
        "stateful": False,
        "unroll": False,
        "units": units,
        "kernel_initializer": GLOROT,
        "recurrent_initializer": ORTHOGONAL,
        "bias_initializer": ZEROS,
        "kernel_regularizer": None,
        "recurrent_regularizer": None,
        "bias_regularizer": None,
        "activity_regularizer": None,
        "kernel_constraint": None,
        "recurrent_constraint": None,
        "bias_constraint": None,
    }
    if cls != "CuDNNGRU" and cls != "CuDNNLSTM":
        config.update(
            {
                "implementation": 0,
                "activation": "tanh",
                "recurrent_activation": "hard_sigmoid",
                "use_bias": True,
                "dropout": 0.0,
                "recurrent_dropout": 0.0,
            }
        )
    if cls == "LSTM":
        config["unit_forget_bias"] = True
    config.update(extra)
    return {"class_name": cls, "config": config}


def dense_config(name: str, units: int) -> dict:
    return {
        "class_name": "Dense",
        "config": {
            "name": name,
            "trainable": True,
            "units": units,
            "activation": "linear",
            "use_bias": True,
            "kernel_initializer": GLOROT,
            "bias_initializer": ZEROS,
            "kernel_regularizer": None,
            "bias_regularizer": None,
            "activity_regularizer": None,
            "kernel_constraint": None,
            "bias_constraint": None,
        },
    }


def sequential_json(layers: list[dict], keras_version: str) -> str:
    """Keras 2.0/2.1 wrote a Sequential config as the bare list of its layers, 2.2 as {name, layers}."""
    config = layers if keras_version < "2.2" else {"name": "sequential_1", "layers": layers}
    return json.dumps(
        {
            "class_name": "Sequential",
            "config": config,
            "keras_version": keras_version,
            "backend": "tensorflow",
        }
    )


def write_weights(group, layers: dict[str, list[tuple[str, np.ndarray]]], keras_version: str) -> None:
    """Keras 2's layout: layer_names on the group, weight_names on each layer's group."""
    group.attrs["layer_names"] = [name.encode() for name in layers]
    group.attrs["backend"] = b"tensorflow"
    group.attrs["keras_version"] = keras_version.encode()
    for name, weights in layers.items():
        layer = group.create_group(name)
        names = [f"{name}/{w}:0" for w, _ in weights]
        layer.attrs["weight_names"] = [n.encode() for n in names]
        for full, (_, value) in zip(names, weights, strict=True):
            layer.create_dataset(full, data=value.astype(np.float32))


def write_model_h5(path: Path, config_json: str, layers: dict, keras_version: str) -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = keras_version.encode()
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(
            {k: v for k, v in json.loads(config_json).items() if k in ("class_name", "config")}
        ).encode()
        write_weights(f.create_group("model_weights"), layers, keras_version)
    return path


def write_weights_h5(path: Path, layers: dict, keras_version: str) -> Path:
    """model.save_weights() of Keras 2: the layer groups at the file's root."""
    import h5py

    with h5py.File(path, "w") as f:
        write_weights(f, layers, keras_version)
    return path


def cudnn_kernel(kernel: np.ndarray, gates: int) -> np.ndarray:
    """cuDNN read each gate's stored (in, units) kernel as the flat row-major buffer of a (units, in)
    matrix: the matrix x is multiplied by, in Keras' layout, is that buffer read column-major."""
    return np.hstack([k.reshape(-1).reshape(k.shape[1], k.shape[0]).T for k in np.hsplit(kernel, gates)])


def cudnn_recurrent(recurrent: np.ndarray, gates: int) -> np.ndarray:
    return np.hstack([k.T for k in np.hsplit(recurrent, gates)])


def gru_case(rng, steps=5, features=3, units=4, out=2, cls="GRU", name="gru_1"):
    """(layers config, weights, numpy reference fn) of GRU -> Dense as Keras 2.0 (reset_after=False, or
    for CuDNNGRU the cuDNN formula with its two biases) computed it."""
    kernel = rng.normal(size=(features, 3 * units)).astype(np.float32)
    recurrent = rng.normal(size=(units, 3 * units)).astype(np.float32) * 0.5
    bias = rng.normal(size=(6 * units if cls == "CuDNNGRU" else 3 * units,)).astype(np.float32) * 0.3
    dense_k = rng.normal(size=(units, out)).astype(np.float32)
    dense_b = rng.normal(size=(out,)).astype(np.float32)
    layers = [recurrent_config(cls, name, units, [steps, features]), dense_config("dense_1", out)]
    weights = {
        name: [("kernel", kernel), ("recurrent_kernel", recurrent), ("bias", bias)],
        "dense_1": [("kernel", dense_k), ("bias", dense_b)],
    }

    def reference(x: np.ndarray) -> np.ndarray:
        h = np.zeros((x.shape[0], units))
        u = units
        for t in range(x.shape[1]):
            xt = x[:, t, :]
            if cls == "CuDNNGRU":
                bi, bh = bias[: 3 * u], bias[3 * u :]
                xw, hu = xt @ cudnn_kernel(kernel, 3) + bi, h @ cudnn_recurrent(recurrent, 3) + bh
                z = sigmoid(xw[:, :u] + hu[:, :u])
                r = sigmoid(xw[:, u : 2 * u] + hu[:, u : 2 * u])
                hh = np.tanh(xw[:, 2 * u :] + r * hu[:, 2 * u :])
            else:
                xw = xt @ kernel + bias
                z = hard_sigmoid_keras2(xw[:, :u] + h @ recurrent[:, :u])
                r = hard_sigmoid_keras2(xw[:, u : 2 * u] + h @ recurrent[:, u : 2 * u])
                hh = np.tanh(xw[:, 2 * u :] + (r * h) @ recurrent[:, 2 * u :])
            h = z * h + (1 - z) * hh
        return h @ dense_k + dense_b

    return layers, weights, reference


def hard_sigmoid_keras3(x):
    return np.clip(x / 6.0 + 0.5, 0.0, 1.0)


def lstm_case(rng, steps=5, features=3, units=4, out=2, name="lstm_1", gate=hard_sigmoid_keras2):
    """LSTM -> Dense with Keras 2's hard_sigmoid (0.2 x + 0.5) as its recurrent activation."""
    kernel = rng.normal(size=(features, 4 * units)).astype(np.float32)
    recurrent = rng.normal(size=(units, 4 * units)).astype(np.float32) * 0.5
    bias = rng.normal(size=(4 * units,)).astype(np.float32) * 0.3
    dense_k = rng.normal(size=(units, out)).astype(np.float32)
    dense_b = rng.normal(size=(out,)).astype(np.float32)
    layers = [recurrent_config("LSTM", name, units, [steps, features]), dense_config("dense_1", out)]
    weights = {
        name: [("kernel", kernel), ("recurrent_kernel", recurrent), ("bias", bias)],
        "dense_1": [("kernel", dense_k), ("bias", dense_b)],
    }

    def reference(x: np.ndarray) -> np.ndarray:
        h = np.zeros((x.shape[0], units))
        c = np.zeros_like(h)
        u = units
        for t in range(x.shape[1]):
            g = x[:, t, :] @ kernel + h @ recurrent + bias
            i, f = gate(g[:, :u]), gate(g[:, u : 2 * u])
            c = f * c + i * np.tanh(g[:, 2 * u : 3 * u])
            h = gate(g[:, 3 * u :]) * np.tanh(c)
        return h @ dense_k + dense_b

    return layers, weights, reference
