"""Keras 1.x and 2.0-2.3 model configs, read with the defaults of the Keras that wrote them.

A config stores the arguments its Keras knew. Keys added later take today's defaults when absent, and some
of those compute something else than the writer did: a GRU saved before Keras 2.1.3 has no `reset_after`
and computed what `reset_after=False` computes (today's default is True), and `hard_sigmoid` was
`0.2 * x + 0.5` in Keras 2 (tf_keras keeps it) where Keras 3 uses `x / 6 + 0.5`. Such files are rebuilt
with tf_keras from a config completed with the writer's defaults; tf_keras' legacy HDF5 weight loading then
converts the weights themselves (Keras 1 layouts, CuDNNGRU/CuDNNLSTM kernels).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

_RECURRENT = ("SimpleRNN", "GRU", "LSTM")
# Keras 1 argument names, as Keras 2.0's legacy interfaces converted them.
_KERAS1_RENAMES = {
    "output_dim": "units",
    "init": "kernel_initializer",
    "inner_init": "recurrent_initializer",
    "inner_activation": "recurrent_activation",
    "W_regularizer": "kernel_regularizer",
    "U_regularizer": "recurrent_regularizer",
    "b_regularizer": "bias_regularizer",
    "W_constraint": "kernel_constraint",
    "U_constraint": "recurrent_constraint",
    "b_constraint": "bias_constraint",
    "dropout_W": "dropout",
    "dropout_U": "recurrent_dropout",
    "bias": "use_bias",
}
# Keras 1's consume_less became Keras 2.0's implementation (0, 1, 2); mode 0 and 1 compute the same
# thing, and tf_keras knows only 1 and 2.
_CONSUME_LESS = {"cpu": 1, "mem": 1, "gpu": 2}
# cuDNN layers (Keras 2.0.9-2.3, GPU only) compute what these portable settings compute.
_CUDNN = {
    "CuDNNGRU": ("GRU", {"reset_after": True, "activation": "tanh", "recurrent_activation": "sigmoid"}),
    "CuDNNLSTM": ("LSTM", {"activation": "tanh", "recurrent_activation": "sigmoid"}),
}
_RESET_AFTER_SINCE = (2, 1, 3)


def version_tuple(version: str) -> tuple[int, ...]:
    """(2, 0, 8) for '2.0.8', (2, 2, 4) for '2.2.4-tf'; () when there is no version."""
    numbers = re.findall(r"\d+", version.split("-")[0])
    return tuple(int(n) for n in numbers[:3])


def _walk_layers(node: Any):
    """Every dict carrying a layer's class_name and config, nested models included."""
    if isinstance(node, dict):
        if "class_name" in node and isinstance(node.get("config"), dict):
            yield node
        for value in node.values():
            yield from _walk_layers(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_layers(value)


def era_changes(config: dict, keras_version: str) -> list[str]:
    """What reading this Keras 1/2 config with today's defaults would compute differently; [] for none."""
    version = version_tuple(keras_version)
    if not version or version[0] >= 3:
        return []
    found: list[str] = []
    for layer in _walk_layers(config):
        cls, cfg = layer["class_name"], layer["config"]
        name = cfg.get("name", cls)
        if cls in _CUDNN:
            found.append(f"{cls} {name}")
        if cls == "GRU" and "reset_after" not in cfg and version < _RESET_AFTER_SINCE:
            found.append(f"GRU {name} (reset_after=False)")
        if cls in _RECURRENT and set(cfg) & (set(_KERAS1_RENAMES) | {"consume_less"}):
            found.append(f"{cls} {name} (Keras 1 arguments)")
        if "hard_sigmoid" in (
            cfg.get("activation"),
            cfg.get("recurrent_activation"),
            cfg.get("inner_activation"),
        ):
            found.append(f"{cls} {name} (Keras 2 hard_sigmoid)")
    return found


def with_era_defaults(config: dict, keras_version: str) -> dict:
    """The config completed with the writer's defaults and renamed arguments, as tf_keras reads it."""
    version = version_tuple(keras_version)
    out = copy.deepcopy(config)
    for layer in _walk_layers(out):
        cls, cfg = layer["class_name"], layer["config"]
        if cls in _CUDNN:
            layer["class_name"], settings = _CUDNN[cls]
            cfg.update(settings)
            cls = layer["class_name"]
        if cls in _RECURRENT or cls == "Dense":
            for old, new in _KERAS1_RENAMES.items():
                if old in cfg and new not in cfg:
                    cfg[new] = cfg.pop(old)
            if cfg.pop("forget_bias_init", None) == "one":
                cfg["unit_forget_bias"] = True
            consume_less = cfg.pop("consume_less", None)
            if consume_less is not None:
                cfg.setdefault("implementation", _CONSUME_LESS.get(consume_less, 1))
            if cfg.get("implementation") == 0:
                cfg["implementation"] = 1
        if cls == "GRU" and "reset_after" not in cfg and version and version < _RESET_AFTER_SINCE:
            cfg["reset_after"] = False
    return out


def era_config_json(config_text: str, keras_version: str) -> str:
    return json.dumps(with_era_defaults(json.loads(config_text), keras_version))
