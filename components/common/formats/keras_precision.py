"""Mixed-precision Keras models (`mixed_float16`, `mixed_bfloat16`): their compute dtype and served outputs.

TF Serving's REST API encodes float, double, ints, bool and string tensors only (json_tensor.cc has no
DT_HALF or DT_BFLOAT16 case: a half output fails every REST request with "Failed to write JSON value for
tensor type"). Half-precision outputs are therefore widened to float32 at the serving boundary; float32
holds every float16 and bfloat16 value exactly, so nothing the model computes is lost.
"""

from __future__ import annotations

from typing import Any

HALF_DTYPES = ("float16", "bfloat16")


def compute_dtype(model: Any) -> str:
    """The least precise float dtype any layer computes in ("float16", "bfloat16"), else "float32"."""
    found = set()
    for layer in _layers(model):
        policy = getattr(layer, "dtype_policy", None)
        dtype = getattr(policy, "compute_dtype", None) or getattr(layer, "compute_dtype", None)
        if dtype:
            found.add(getattr(dtype, "name", str(dtype)))
    for half in ("bfloat16", "float16"):  # bfloat16 keeps fewer mantissa bits than float16
        if half in found:
            return half
    return "float32"


def _layers(model: Any) -> list[Any]:
    try:
        return [model, *model._flatten_layers(include_self=False)]
    except Exception:  # a model without Keras' layer walk: its own policy only
        return [model, *getattr(model, "layers", [])]


def widen_half(tf: Any, outputs: dict[str, Any]) -> dict[str, Any]:
    """float16/bfloat16 outputs cast to float32 (exactly: float32 holds every half value)."""
    return {k: tf.cast(v, tf.float32) if v.dtype.name in HALF_DTYPES else v for k, v in outputs.items()}
