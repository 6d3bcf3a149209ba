"""Check 13: TF Serving's REST JSON encoding of a batch, row (`instances`) and columnar (`inputs`).

The encoding itself is components/common/tf_serving_json.py (shared with the sample reader).
"""

from __future__ import annotations

import json

import numpy as np

from kfp_tfserving.components.check_signatures.findings import ERROR, WARNING, Finding
from kfp_tfserving.components.common.tf_serving_json import (
    decode_request,
    to_json_value,
)

Tensors = dict[str, np.ndarray]


def encode_columnar(tensors: Tensors) -> str:
    return json.dumps({"inputs": {k: to_json_value(v) for k, v in tensors.items()}})


def decode_columnar(text: str, dtypes: dict[str, str]) -> Tensors:
    return decode_request(json.loads(text), dtypes)


def row_format_problem(tensors: Tensors) -> str:
    """Why the tensors cannot be sent as rows ('' when they can): rows need one shared dim 0."""
    scalars = sorted(k for k, v in tensors.items() if v.ndim == 0)
    if scalars:
        return f"{scalars} have no batch dimension"
    sizes = {k: v.shape[0] for k, v in tensors.items()}
    if len(set(sizes.values())) > 1:
        return f"dim 0 differs between tensors {sizes}"
    return ""


def encode_row(tensors: Tensors) -> str:
    batch = next(iter(tensors.values())).shape[0]
    # np.asarray(b"..") would make a fixed-width bytes array, which drops trailing NUL bytes.
    rows = [
        {k: to_json_value(np.array(v[i], dtype=v.dtype)) for k, v in tensors.items()} for i in range(batch)
    ]
    return json.dumps({"instances": rows})


def decode_row(text: str, dtypes: dict[str, str]) -> Tensors:
    return decode_request(json.loads(text), dtypes)


def same_tensor(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def _changed(original: Tensors, decoded: Tensors) -> list[str]:
    return sorted(k for k in original if not same_tensor(np.asarray(original[k]), decoded[k]))


def round_trip_findings(signature: str, inputs: Tensors, outputs: Tensors) -> list[Finding]:
    """Encode the request both ways and the response as the server would; report what does not survive."""
    found = []
    dtypes = {k: ("string" if v.dtype == object else v.dtype.name) for k, v in inputs.items()}
    decoders = [("columnar", encode_columnar, decode_columnar)]
    problem = row_format_problem(inputs)
    if problem:
        found.append(
            Finding(
                "rest-row-format",
                WARNING,
                f"inputs cannot be sent as row-format 'instances': {problem}",
                "give every input the same leading batch dimension; clients must use columnar 'inputs'",
                signature,
            )
        )
    else:
        decoders.append(("row", encode_row, decode_row))
    for form, encode, decode in decoders:
        try:
            changed = _changed(inputs, decode(encode(inputs), dtypes))
        except (ValueError, TypeError, KeyError) as err:
            changed = [f"({type(err).__name__}: {err})"]
        if changed:
            found.append(
                Finding(
                    "rest-round-trip",
                    ERROR,
                    f"{form} JSON does not decode back to the same tensors: {changed}",
                    "serve dtypes and values JSON can carry (see check unsupported-dtype)",
                    signature,
                )
            )
    problem = row_format_problem(outputs)
    if problem:
        found.append(
            Finding(
                "rest-row-format",
                WARNING,
                f"outputs cannot be answered as row-format 'predictions': {problem}",
                "return outputs that share the batch dimension; row-format requests will fail",
                signature,
            )
        )
    for name, value in sorted(outputs.items()):
        if value.dtype == object and not name.endswith("_bytes"):
            binary = [v for v in value.reshape(-1) if isinstance(v, bytes) and not _is_utf8(v)]
            if binary:
                found.append(
                    Finding(
                        "rest-binary-output",
                        WARNING,
                        "a string output holds binary data, which TF Serving writes into JSON unencoded",
                        f"rename the output to '{name}_bytes' so the server sends it base64-encoded",
                        signature,
                        name,
                    )
                )
    return found


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
