"""Check 13's JSON encoding, against TF Serving's REST rules (row and columnar, b64 strings)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from kfp_tfserving.components.check_signatures.rest_json import (
    decode_columnar,
    decode_row,
    encode_columnar,
    encode_row,
    round_trip_findings,
    row_format_problem,
    same_tensor,
    to_json_value,
)


@pytest.fixture
def batch():
    return {
        "age": np.array([[1.5, 2.25], [np.nan, -0.0]], dtype=np.float32),
        "ids": np.array([2**62, -3], dtype=np.int64),
        "flag": np.array([True, False]),
        # Serialized protos often end in NUL bytes, which fixed-width numpy bytes would drop.
        "text": np.array(["héllo".encode(), b"\xff\x00binary\x00"], dtype=object),
    }


def dtypes_of(tensors):
    return {k: "string" if v.dtype == object else v.dtype.name for k, v in tensors.items()}


def test_binary_strings_travel_as_b64_and_text_as_text(batch):
    encoded = json.loads(encode_columnar(batch))["inputs"]["text"]
    assert encoded[0] == "héllo"
    assert base64.b64decode(encoded[1]["b64"]) == b"\xff\x00binary\x00"


@pytest.mark.parametrize(("encode", "decode"), [(encode_columnar, decode_columnar), (encode_row, decode_row)])
def test_both_forms_decode_back_to_the_same_tensors(batch, encode, decode):
    decoded = decode(encode(batch), dtypes_of(batch))
    for name, value in batch.items():
        assert same_tensor(value, decoded[name]), name


def test_row_form_is_one_object_per_example(batch):
    rows = json.loads(encode_row(batch))["instances"]
    assert len(rows) == 2 and set(rows[1]) == set(batch)
    assert rows[1]["ids"] == -3 and rows[0]["flag"] is True


def test_same_tensor_tells_dtype_shape_and_value_changes_apart():
    a = np.array([[1.0, 2.0]], dtype=np.float32)
    assert same_tensor(a, a.copy())
    assert not same_tensor(a, a.astype(np.float64))
    assert not same_tensor(a, a.reshape(2, 1))
    assert not same_tensor(a, a + 1e-6)


def test_row_format_needs_a_shared_batch_dimension():
    assert row_format_problem({"a": np.zeros((2, 3)), "b": np.zeros(2)}) == ""
    assert "dim 0 differs" in row_format_problem({"a": np.zeros((2, 3)), "b": np.zeros(3)})
    assert "no batch dimension" in row_format_problem(
        {"a": np.zeros((2, 3)), "s": np.float32(1.0) * np.ones(())}
    )


def test_findings_for_outputs_row_json_cannot_carry():
    inputs = {"x": np.ones((2, 3), np.float32)}
    outputs = {
        "y": np.ones((2, 1), np.float32),
        "vocab": np.array([b"a", b"b", b"c"], dtype=object),  # dim 0 is 3, not the batch
        "blob": np.array([b"\x89PNG", b"\x00"], dtype=object),
        "blob_bytes": np.array([b"\x89PNG", b"\x00"], dtype=object),  # the server b64-encodes these
    }
    found = round_trip_findings("serving_default", inputs, outputs)
    assert {(f.code, f.tensor) for f in found} == {("rest-row-format", ""), ("rest-binary-output", "blob")}
    assert all(f.severity == "warning" for f in found)
    assert round_trip_findings("serving_default", inputs, {"y": outputs["y"]}) == []


def test_scalar_inputs_are_columnar_only():
    found = round_trip_findings("s", {"k": np.array(3, np.int32), "x": np.ones((2, 2), np.float32)}, {})
    assert [(f.code, f.severity) for f in found] == [("rest-row-format", "warning")]
    assert "'inputs'" in found[0].fix


def test_a_value_json_cannot_carry_is_an_error():
    # A string tensor holding a non-bytes object cannot be decoded to the same tensor.
    odd = {"s": np.array([b"a", 1.5], dtype=object)}
    assert to_json_value(odd["s"])[1] == "1.5"
    found = round_trip_findings("sig", odd, {})
    assert {(f.code, f.severity) for f in found} == {("rest-round-trip", "error")}
