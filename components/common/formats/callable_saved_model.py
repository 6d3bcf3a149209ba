"""TF2 SavedModels without signatures that expose `__call__` (TF2 TF Hub "reusable SavedModels")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kfp_tfserving.components.common.errors import FormatError
from kfp_tfserving.components.common.formats.base import LoadedModel, SavedModelSource, TensorSpecInfo
from kfp_tfserving.components.common.formats.tf1_graph import unique_keys
from kfp_tfserving.components.common.saved_model.proto import SERVING_DEFAULT
from kfp_tfserving.components.common.saved_model.tags import SERVE
from kfp_tfserving.components.common.tfenv import import_tensorflow, silenced_stderr


def _inference_traces(tf, source: Any) -> list[Any]:
    """Concrete functions of `__call__` whose Python arguments (e.g. training) are all False or None."""
    call = source.__call__ if callable(source) else None
    traces = list(getattr(call, "concrete_functions", None) or [])
    found = []
    for fn in traces:
        flat = tf.nest.flatten(fn.structured_input_signature)
        tensors = [v for v in flat if isinstance(v, tf.TensorSpec)]
        if tensors and all(isinstance(v, tf.TensorSpec) or v in (False, None) for v in flat):
            found.append(fn)
    return found


def _generality(tf, fn: Any) -> int:
    specs = [v for v in tf.nest.flatten(fn.structured_input_signature) if isinstance(v, tf.TensorSpec)]
    return sum(
        1 for s in specs for d in (s.shape.as_list() if s.shape.rank is not None else [None]) if d is None
    )


def _named(tf, result: Any) -> dict[str, Any]:
    if isinstance(result, dict):
        return dict(result)
    values = tf.nest.flatten(result)
    return {"outputs": values[0]} if len(values) == 1 else {f"outputs_{i}": v for i, v in enumerate(values)}


def load_callable(handler_name: str, entry: Path, source: Any) -> LoadedModel:
    """serving_default traced from the model's most general inference-mode `__call__`."""
    tf = import_tensorflow()
    traces = _inference_traces(tf, source)
    if not traces:
        raise FormatError(
            f"{entry}: the SavedModel has no signatures and no callable __call__ with tensor inputs",
            "re-save it with signatures=..., or give its serving function with --signature",
        )
    chosen = max(traces, key=lambda fn: _generality(tf, fn))
    structure = chosen.structured_input_signature
    specs = [v for v in tf.nest.flatten(structure) if isinstance(v, tf.TensorSpec)]
    keys = unique_keys([s.name or "inputs" for s in specs])

    @tf.function(
        input_signature=[tf.TensorSpec(s.shape, s.dtype, name=k) for s, k in zip(specs, keys, strict=True)]
    )
    def serving_default(*tensors):
        it = iter(tensors)
        args, kwargs = tf.nest.map_structure(
            lambda v: next(it) if isinstance(v, tf.TensorSpec) else v, structure
        )
        return _named(tf, source(*args, **kwargs))

    def reference(inputs):
        result = serving_default(*[tf.constant(inputs[k]) for k in keys])
        return {k: np.asarray(v.numpy()) for k, v in result.items()}

    shapes = [None if s.shape.rank is None else tuple(s.shape.as_list()) for s in specs]
    return LoadedModel(
        handler_name,
        source,
        [TensorSpecInfo(k, s.dtype.name, shape) for k, s, shape in zip(keys, specs, shapes, strict=True)],
        reference,
        saved_model=SavedModelSource(entry, SERVE, callable=serving_default),
    )


def export_callable(loaded: LoadedModel, export_dir: Path) -> None:
    tf = import_tensorflow()
    with silenced_stderr():
        tf.saved_model.save(
            loaded.model, str(export_dir), signatures={SERVING_DEFAULT: loaded.saved_model.callable}
        )
