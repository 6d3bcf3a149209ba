"""Inputs for parity checks and warmup: generated from a signature, or read from the user's sample file."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from kfp_tfserving.components.common.encoded_images import encoded_images
from kfp_tfserving.components.common.errors import UserError
from kfp_tfserving.components.common.formats.base import Tensors, TensorSpecInfo
from kfp_tfserving.components.common.tf_serving_json import decode_request

# Unknown non-batch dimensions get this size: small enough to be quick, big enough to exercise reductions.
UNKNOWN_DIM = 4
# When the model refuses that (a Cropping1D, a strided stack or a fixed window needs more steps), these
# lengths are tried in turn, as far as the generated batch stays within the budget.
LENGTH_LADDER = (UNKNOWN_DIM, 16, 64, 256, 1024, 4096, 16384)
GENERATED_BYTES_BUDGET = 256 * 2**20


def _concrete_shape(spec: TensorSpecInfo, batch: int, unknown_dim: int = UNKNOWN_DIM) -> tuple[int, ...]:
    if spec.shape is None:
        return (batch,)
    dims = list(spec.shape)
    if dims and dims[0] is None:
        dims[0] = batch
    return tuple(unknown_dim if d is None else d for d in dims)


def has_unknown_dims(specs: list[TensorSpecInfo]) -> bool:
    """True when some input has an unknown dimension past the batch one (its length is ours to pick)."""
    return any(spec.shape is not None and None in spec.shape[1:] for spec in specs)


def length_ladder(specs: list[TensorSpecInfo], batch: int = 2) -> list[int]:
    """The lengths to try for unknown dimensions: UNKNOWN_DIM alone when there are none, else the ladder as
    far as every generated input stays within GENERATED_BYTES_BUDGET in all."""
    if not has_unknown_dims(specs):
        return [UNKNOWN_DIM]
    fitting = []
    for length in LENGTH_LADDER:
        size = sum(
            int(np.prod(_concrete_shape(spec, batch, length))) * _item_bytes(spec.dtype) for spec in specs
        )
        if fitting and size > GENERATED_BYTES_BUDGET:
            break
        fitting.append(length)
    return fitting


def _item_bytes(dtype: str) -> int:
    if dtype == "string":
        return 16
    return 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize


def _serialized_examples(spec: TensorSpecInfo, shape: tuple[int, ...], rng) -> np.ndarray:
    """tf.Example protos carrying every feature the model parses from this input (random values)."""
    from kfp_tfserving.components.common.saved_model.tf_protos import tf_proto_module

    example_pb2 = tf_proto_module("tensorflow.core.example.example_pb2")

    rows = []
    for i in range(int(np.prod(shape))):
        example = example_pb2.Example()
        for feature in spec.example_features or ():
            # FixedLen: exactly its declared shape. VarLen (sparse, ragged, FixedLenSequence): one value, as
            # graphs commonly densify a categorical feature to [batch, 1] and a second value breaks them.
            size = int(np.prod(feature.shape)) if feature.shape is not None else 1
            slot = example.features.feature[feature.name]
            if feature.dtype == "string":
                slot.bytes_list.value.extend(f"{feature.name}-{i}-{j}".encode() for j in range(size))
            elif feature.dtype == "int64":
                slot.int64_list.value.extend(int(v) for v in rng.integers(0, 10, size=size))
            else:
                slot.float_list.value.extend(float(v) for v in rng.random(size))
        rows.append(example.SerializeToString())
    return np.array(rows, dtype=object).reshape(shape)


def _strings(spec: TensorSpecInfo, count: int, seed: int) -> np.ndarray:
    """Encoded images for inputs the model decodes, its own vocabulary entries, else short ASCII tokens."""
    if spec.image_format:
        values = encoded_images(count, spec.image_format, seed)
    elif spec.vocabulary:
        values = [spec.vocabulary[(seed + i) % len(spec.vocabulary)].encode() for i in range(count)]
    else:
        values = [f"sample-{i}".encode() for i in range(count)]
    array = np.empty(count, dtype=object)
    array[:] = values  # element by element: np.array would cut trailing NUL bytes off binary strings
    return array


def generate_inputs(
    specs: list[TensorSpecInfo], batch: int = 2, seed: int = 0, unknown_dim: int = UNKNOWN_DIM
) -> Tensors:
    """Deterministic inputs matching each spec's dtype and shape (unknown dimensions: `unknown_dim`)."""
    rng = np.random.default_rng(seed)
    out: Tensors = {}
    for spec in specs:
        shape = _concrete_shape(spec, batch, unknown_dim)
        dtype = np.dtype(spec.dtype) if spec.dtype not in ("string", "bfloat16") else None
        if spec.dtype == "string" and spec.example_features:
            out[spec.name] = _serialized_examples(spec, shape, rng)
        elif spec.dtype == "string":
            out[spec.name] = _strings(spec, int(np.prod(shape)), seed).reshape(shape)
        elif spec.dtype == "bool":
            out[spec.name] = rng.integers(0, 2, size=shape).astype(bool)
        elif dtype is not None and np.issubdtype(dtype, np.integer):
            out[spec.name] = rng.integers(0, 10, size=shape).astype(dtype)
        elif dtype is not None and np.issubdtype(dtype, np.complexfloating):
            out[spec.name] = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
        else:
            out[spec.name] = rng.random(shape).astype(dtype or np.float32)
    return out


def _read_raw(path: Path, label: str, dtypes: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """The named arrays of an .npz, or of JSON in TF Serving's 'inputs' or 'instances' form."""
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        doc = json.loads(path.read_text())
        if dtypes is None:  # before the signature is known: the request only has to be a JSON object
            if not isinstance(doc, dict):
                raise ValueError("expected a JSON object with 'instances' or 'inputs'")
            return {}
        return decode_request(doc, dtypes)
    except RecursionError:
        problem = "nested too deeply"
    except (OSError, ValueError, TypeError, KeyError, EOFError, zipfile.BadZipFile) as err:
        problem = " ".join(str(err).split())[:200] or type(err).__name__
    raise UserError(
        f"{label}: cannot read the sample ({problem})",
        "give an .npz of named arrays or a TF Serving JSON request ({'inputs': ...} or {'instances': [...]})",
    )


def check_sample_file(path: Path, label: str = "") -> None:
    """The sample parses (its match with the signature is checked once the model is loaded)."""
    label = label or str(path)
    if not path.is_file():
        raise UserError(f"{label}: no such sample file", "give the path of an .npz or JSON sample")
    _read_raw(path, label)


def _shape_matches(found: tuple[int, ...], expected: tuple[int | None, ...]) -> bool:
    return len(found) == len(expected) and all(
        e is None or e == f for f, e in zip(found, expected, strict=True)
    )


def load_sample(path: Path, specs: list[TensorSpecInfo], label: str = "") -> Tensors:
    """A user's sample batch checked against the signature's inputs; `label` names the user's path in
    errors (`path` may be a download of it). JSON is decoded as TF Serving decodes it ({"b64": ...})."""
    label = label or str(path)
    raw = _read_raw(path, label, {s.name: s.dtype for s in specs})
    wanted = {s.name: s for s in specs}
    missing = sorted(set(wanted) - set(raw))
    if missing:
        raise UserError(
            f"{label}: the sample lacks input(s) {missing}", f"the signature's inputs are {sorted(wanted)}"
        )
    out = {}
    for name, spec in wanted.items():
        value = np.asarray(raw[name])
        if spec.shape is not None and not _shape_matches(value.shape, spec.shape):
            expected = "(" + ", ".join("-1" if d is None else str(d) for d in spec.shape) + ")"
            raise UserError(
                f"{label}: input '{name}' has shape {tuple(value.shape)}, the signature expects {expected}",
                "give a sample batch of that shape (-1: any size)",
            )
        try:
            out[name] = _as_strings(value) if spec.dtype == "string" else value.astype(spec.dtype)
        except (ValueError, TypeError):
            raise UserError(
                f"{label}: input '{name}' holds {value.dtype} values, the signature expects {spec.dtype}",
                f"give {spec.dtype} values for '{name}'",
            ) from None
    return out


def _as_strings(value: np.ndarray) -> np.ndarray:
    """An object array of bytes, as the server feeds a string tensor (an .npz holds str or fixed bytes)."""
    out = np.empty(value.shape, dtype=object)
    out.reshape(-1)[:] = [v.encode() if isinstance(v, str) else bytes(v) for v in value.reshape(-1)]
    return out
