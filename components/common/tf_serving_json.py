"""TF Serving's REST JSON encoding of tensors, one copy for the sample reader, the check step and tests.

Requests: string tensors arrive as JSON strings (UTF-8) or as {"b64": "..."} objects, in the row form
(`instances`: a list of rows, each an object of named inputs or, for a one-input signature, a bare value)
or the columnar form (`inputs`: an object of named inputs or, for one input, a bare value). Responses:
the server writes a string output as {"b64": ...} only when the output's name ends in `_bytes`.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

Tensors = dict[str, np.ndarray]


def _string_to_json(value: bytes, force_b64: bool) -> Any:
    if not force_b64:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return {"b64": base64.b64encode(value).decode("ascii")}


def to_json_value(array: np.ndarray, force_b64: bool = False) -> Any:
    """A tensor as TF Serving writes it in JSON: nested lists, strings as text or b64 objects."""
    if array.dtype == object or array.dtype.kind in "SU":
        flat = [
            _string_to_json(v if isinstance(v, bytes) else str(v).encode(), force_b64)
            for v in array.reshape(-1)
        ]
        return np.array(flat, dtype=object).reshape(array.shape).tolist() if array.ndim else flat[0]
    return array.tolist()


def response_json_value(name: str, array: np.ndarray) -> Any:
    """An output tensor as the server answers it: b64 objects exactly when the name ends in `_bytes`."""
    return to_json_value(array, force_b64=name.endswith("_bytes"))


def is_b64(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def _string_from_json(value: Any) -> bytes:
    if is_b64(value):
        return base64.b64decode(value["b64"], validate=True)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise ValueError(f"expected a string or a b64 object, got {type(value).__name__}")


def from_json_value(value: Any, dtype: str) -> np.ndarray:
    """Decode a JSON value into a tensor of the signature's dtype, as the server does."""
    if dtype == "string":
        if is_b64(value) or isinstance(value, str):
            return np.array(_string_from_json(value), dtype=object)
        array = np.empty(np.shape(np.array(value, dtype=object)), dtype=object)
        flat = [_string_from_json(v) for v in _leaves(value)]
        array.reshape(-1)[:] = flat
        return array
    if any(is_b64(v) for v in _leaves(value)):
        raise ValueError(f"a b64 object in a {dtype} tensor; only string tensors take b64 values")
    return np.array(value, dtype=dtype)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def request_columns(body: Any, names: list[str]) -> dict[str, Any]:
    """The JSON value of each named input of a request body, in either form (values still JSON)."""
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object with 'instances' or 'inputs'")
    only = names[0] if len(names) == 1 else None

    def unnamed(value: Any) -> dict[str, Any]:
        if only is None:
            raise ValueError(f"unnamed values, but the signature has inputs {sorted(names)}: name each one")
        return {only: value}

    if "inputs" in body:
        inputs = body["inputs"]
        return inputs if isinstance(inputs, dict) and not is_b64(inputs) else unnamed(inputs)
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise ValueError("'instances' must be a non-empty list of rows")
        if isinstance(rows[0], dict) and not is_b64(rows[0]):
            keys = list(rows[0])
            if any(not isinstance(r, dict) or list(r) != keys for r in rows):
                raise ValueError("every row of 'instances' must name the same inputs")
            return {k: [r[k] for r in rows] for k in keys}
        return unnamed(rows)
    return body  # a plain object of named inputs


def decode_request(body: Any, dtypes: dict[str, str]) -> Tensors:
    """A REST request body as the tensors the server feeds (inputs the signature lacks are dropped)."""
    columns = request_columns(body, list(dtypes))
    return {k: from_json_value(v, dtypes[k]) for k, v in columns.items() if k in dtypes}
