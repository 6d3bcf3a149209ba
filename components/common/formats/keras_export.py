"""Export any in-memory Keras model (Keras 3 or tf_keras) with the model's own tensor names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from kfp_tfserving.components.common.errors import FormatError
from kfp_tfserving.components.common.formats.base import Tensors, TensorSpecInfo
from kfp_tfserving.components.common.formats.keras_precision import widen_half
from kfp_tfserving.components.common.saved_model.proto import SERVING_DEFAULT
from kfp_tfserving.components.common.tfenv import import_tensorflow, silenced_stderr

_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.\-/]")


def _clean(name: str) -> str:
    """Signature keys become graph op names; TF refuses characters outside this set."""
    name = name.split(":")[0]
    return _INVALID_NAME_CHARS.sub("_", name) or "input"


def _input_structure(model: Any) -> tuple[str, list[str], list[Any]]:
    """('dict'|'list'|'single', names, symbolic tensors) of a model's inputs."""
    if not getattr(model, "inputs", None):
        raise FormatError(
            f"{type(model).__name__}: the Keras model has no defined inputs (a subclassed model never called)",
            "save a functional or Sequential model with an Input layer, or call the model once before saving",
        )
    struct = getattr(model, "input", None)
    if isinstance(struct, dict):
        return "dict", [_clean(k) for k in struct], list(struct.values())
    tensors = list(model.inputs)
    legacy_names = getattr(model, "input_names", None)  # tf_keras keeps the Input layer names here
    names = list(legacy_names) if legacy_names else [t.name for t in tensors]
    return ("list" if len(tensors) > 1 else "single"), [_clean(n) for n in names], tensors


def keras_input_specs(model: Any) -> list[TensorSpecInfo]:
    _, names, tensors = _input_structure(model)
    return [
        TensorSpecInfo(name, _numpy_dtype_name(t.dtype), tuple(t.shape) if t.shape is not None else None)
        for name, t in zip(names, tensors, strict=True)
    ]


def _dtype_name(dtype: Any) -> str:
    return getattr(dtype, "name", None) or str(dtype)


def _numpy_dtype_name(dtype: Any) -> str:
    """The dtype as TensorSpecInfo spells it: numpy's name, and 'string' for string inputs (numpy has none)."""
    name = _dtype_name(dtype)
    return name if name in ("string", "bfloat16") else np.dtype(name).name


def keras_output_names(model: Any) -> list[str]:
    names = list(getattr(model, "output_names", None) or [])
    if not names:
        count = len(model.outputs) if getattr(model, "outputs", None) else 1
        names = [f"output_{i}" for i in range(count)]
    return [_clean(n) for n in names]


def _call_model(model: Any, kind: str, names: list[str], args: list[Any]) -> Any:
    if kind == "dict":
        return model(dict(zip(list(model.input), args, strict=True)), training=False)
    return model(list(args) if kind == "list" else args[0], training=False)


def _named_outputs(result: Any, names: list[str]) -> dict[str, Any]:
    if isinstance(result, dict):
        return {_clean(k): v for k, v in result.items()}
    values = list(result) if isinstance(result, (list, tuple)) else [result]
    if len(values) != len(names):
        names = [f"output_{i}" for i in range(len(values))]
    return dict(zip(names, values, strict=True))


def keras_reference(model: Any):
    """Run the source Keras model on named numpy inputs; returns named numpy outputs."""
    kind, names, _ = _input_structure(model)
    out_names = keras_output_names(model)

    def run(inputs: Tensors) -> Tensors:
        result = _call_model(model, kind, names, [inputs[n] for n in names])
        return {k: np.asarray(v) for k, v in _named_outputs(result, out_names).items()}

    return run


def _lookup_layers(model: Any) -> list[Any]:
    """Layers that hold a lookup table (StringLookup, IntegerLookup, TextVectorization's inner lookup)."""
    found, stack, seen = [], [model], set()
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if getattr(layer, "lookup_table", None) is not None:
            found.append(layer)
        stack.extend(getattr(layer, "layers", None) or [])
        stack.extend(v for v in vars(layer).values() if _is_layer(v))  # e.g. TextVectorization's lookup
    return found


def _is_layer(value: Any) -> bool:
    return hasattr(value, "lookup_table") or (hasattr(value, "layers") and hasattr(value, "call"))


def _is_keras3(model: Any) -> bool:
    return type(model).__module__.startswith("keras.") or any(
        c.__module__.startswith("keras.src") for c in type(model).__mro__
    )


def export_keras(model: Any, export_dir: Path) -> None:
    """Save `model` with one serving_default whose inputs and outputs carry the model's own names.

    Each Keras saves through its own export path: a Keras 3 model saved with `tf.saved_model.save` gets a
    saver_def that restores other variable handles than the signature reads, which only TF2's object-graph
    loader hides (TF Serving fails every request). Keras 3's ExportArchive and tf_keras' tracked variables
    both restore through the saver_def, as the serving oracle proves for every export.
    """
    tf = import_tensorflow()
    kind, names, tensors = _input_structure(model)
    out_names = keras_output_names(model)
    if len(set(names)) != len(names):
        raise FormatError(f"model inputs have duplicate names {names}", "give each Input layer a unique name")
    specs = [
        tf.TensorSpec(shape=t.shape, dtype=_dtype_name(t.dtype), name=n)
        for n, t in zip(names, tensors, strict=True)
    ]

    def serving_default(*args):
        # Mixed precision: REST cannot encode half outputs, so they are served as (exact) float32.
        return widen_half(tf, _named_outputs(_call_model(model, kind, names, list(args)), out_names))

    if _is_keras3(model):
        import keras

        archive = keras.export.ExportArchive()
        # Not archive.track(model): add_endpoint tracks every variable the endpoint uses, once, and
        # track(model) adds the Keras variables a second time under other checkpoint keys, so the version
        # held each weight twice (a 1.6 GB model: 3.2 GB of variables for TF Serving's restore to read).
        # Only the lookup tables need tracking of their own.
        for layer in _lookup_layers(model):
            archive.track(layer.lookup_table)
        archive.add_endpoint(SERVING_DEFAULT, serving_default, input_signature=specs)
        with silenced_stderr():
            archive.write_out(str(export_dir), verbose=False)
        return
    function = tf.function(serving_default, input_signature=specs)
    with silenced_stderr():
        tf.saved_model.save(model, str(export_dir), signatures={SERVING_DEFAULT: function})
