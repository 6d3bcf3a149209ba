"""A signature tensor as this project describes it: key, numpy dtype name, shape (and what parses it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kfp_tfserving.components.common.saved_model.tf_protos import types_pb2

if TYPE_CHECKING:  # numpy is for the steps that hold tensors; the push reads protos only
    import numpy as np

Tensors = dict[str, "np.ndarray"]

# TensorFlow's DataType enum names whose dtype names are not the lower-cased enum name.
_RENAMED = {"DT_FLOAT": "float32", "DT_DOUBLE": "float64", "DT_HALF": "float16"}


def dtype_name(enum: int) -> str:
    """TensorFlow's name of a DataType enum value ("float32", "string", "int64_ref"), as tf.dtypes.as_dtype
    spells it; "invalid" for DT_INVALID."""
    if not enum:
        return "invalid"
    name = types_pb2().DataType.Name(enum)
    ref = name.endswith("_REF")
    base = name[: -len("_REF")] if ref else name
    return _RENAMED.get(base, base[len("DT_") :].lower()) + ("_ref" if ref else "")


@dataclass(frozen=True)
class ExampleFeature:
    """One feature a serialized tf.Example input is parsed into (read from the graph's ParseExample op)."""

    name: str
    dtype: str  # float32, int64 or string
    shape: tuple[int, ...] | None  # dense features: the fixed shape; None: sparse or ragged (any length)


@dataclass(frozen=True)
class TensorSpecInfo:
    """A named tensor of a signature: dtype name as numpy spells it, shape with None for unknown dims."""

    name: str
    dtype: str
    shape: tuple[int | None, ...] | None  # None: unknown rank
    # Set for string inputs the model parses as tf.Example protos (Estimator classify/regress signatures):
    # sample inputs must then be serialized examples carrying these features.
    example_features: tuple[ExampleFeature, ...] | None = None
    # Set for string inputs that reach an image decoder: the encoding samples must have (jpeg, png, ...).
    image_format: str | None = None
    # Keys of the model's own lookup tables, for string inputs samples should draw words from.
    vocabulary: tuple[str, ...] | None = None

    def describe(self) -> str:
        dims = (
            "?"
            if self.shape is None
            else "[" + ",".join("-1" if d is None else str(d) for d in self.shape) + "]"
        )
        return f"{self.name}: {self.dtype}{dims}"
