"""The warmup file TF Serving replays before it serves a version: written by the check step, read by the oracle.

`assets.extra/tf_serving_warmup_requests` is a TFRecord of tensorflow.serving.PredictionLog. The server
refuses a version whose file has more than 1000 records or one request that fails.

Records are written and read by TensorFlow's own C++ record writer and reader, and a record's tensors are
decoded by TensorFlow's Tensor::FromProto (through the C API), as the server decodes them; none of it
needs TensorFlow's Python runtime, so the check step never imports it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kfp_tfserving.components.common.errors import first_line
from kfp_tfserving.components.common.saved_model.tf_protos import tf_proto_module

WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
MAX_RECORDS = 1000

Tensors = dict[str, np.ndarray]


class WarmupError(Exception):
    """The warmup file cannot be read as TF Serving reads it."""


@dataclass
class WarmupRequest:
    index: int
    kind: str  # predict | classify | regress
    signature: str  # '' means serving_default
    inputs: Tensors


def _record_io():
    return tf_proto_module("tensorflow.python.lib.io._pywrap_record_io")


def tensor_proto(value) -> Any:
    """A TensorProto of a numpy array as tf.make_tensor_proto writes one: strings in string_val, every
    other dtype as little-endian tensor_content."""
    from kfp_tfserving.components.common.tf_c_api import DT_STRING, tf_dtype

    array = np.asarray(value)
    proto = tf_proto_module("tensorflow.core.framework.tensor_pb2").TensorProto(dtype=tf_dtype(array.dtype))
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    if proto.dtype == DT_STRING:
        proto.string_val.extend(
            item.encode() if isinstance(item, str) else bytes(item) for item in array.ravel()
        )
    else:
        proto.tensor_content = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return proto


def write_warmup(path: Path, signature: str, batches: list[Tensors]) -> int:
    """Write one PredictLog per batch; returns the number of records."""
    predict_pb2 = tf_proto_module("tensorflow_serving.apis.predict_pb2")
    prediction_log_pb2 = tf_proto_module("tensorflow_serving.apis.prediction_log_pb2")
    record_io = _record_io()
    batches = batches[:MAX_RECORDS]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = record_io.RecordWriter(str(path), record_io.RecordWriterOptions(""))
    try:
        for batch in batches:
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = signature
            for name, value in batch.items():
                request.inputs[name].CopyFrom(tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    finally:
        writer.close()
    return len(batches)


def _records(path: Path) -> Iterator[bytes]:
    """The file's records, read by TensorFlow's RecordReader (length and data CRCs checked)."""
    try:
        yield from _record_io().RecordIterator(str(path), "")
    except Exception as err:  # noqa: BLE001 - the reader's pybind errors carry no TensorFlow error class
        raise WarmupError(f"not a readable TFRecord file ({first_line(err)})") from None


def _examples(request_input) -> np.ndarray:
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        examples = request_input.example_list.examples
    elif kind == "example_list_with_context":
        examples = request_input.example_list_with_context.examples
    else:
        raise WarmupError("a classify/regress request holds no examples")
    return np.array([e.SerializeToString() for e in examples], dtype=object)


def read_warmup(path: Path) -> list[WarmupRequest]:
    """The requests of a warmup file; WarmupError when it is not what TF Serving accepts."""
    from google.protobuf.message import DecodeError

    from kfp_tfserving.components.common.tf_c_api import CApiError, tensor_from_proto

    prediction_log_pb2 = tf_proto_module("tensorflow_serving.apis.prediction_log_pb2")
    requests = []
    for index, record in enumerate(_records(path)):
        if index >= MAX_RECORDS:
            raise WarmupError(f"more than {MAX_RECORDS} records; TF Serving refuses to load the version")
        log = prediction_log_pb2.PredictionLog()
        try:
            log.ParseFromString(record)
        except DecodeError:
            raise WarmupError(f"record {index} is not a tensorflow.serving.PredictionLog") from None
        kind = log.WhichOneof("log_type")
        if kind == "predict_log":
            req = log.predict_log.request
            try:
                inputs = {k: tensor_from_proto(v.SerializeToString()) for k, v in req.inputs.items()}
            except CApiError as err:
                raise WarmupError(
                    f"record {index}: a tensor TensorFlow cannot decode ({err.message})"
                ) from None
            requests.append(WarmupRequest(index, "predict", req.model_spec.signature_name, inputs))
        elif kind in ("classify_log", "regress_log"):
            req = getattr(log, kind).request
            inputs = {"inputs": _examples(req.input)}
            requests.append(WarmupRequest(index, kind[:-4], req.model_spec.signature_name, inputs))
        elif kind == "multi_inference_log":
            req = log.multi_inference_log.request
            inputs = {"inputs": _examples(req.input)}
            for task in req.tasks:  # one request, several classify/regress signatures on the same examples
                task_kind = task.method_name.rsplit("/", 1)[-1]
                if task_kind not in ("classify", "regress"):
                    raise WarmupError(f"record {index}: multi-inference task method '{task.method_name}'")
                requests.append(WarmupRequest(index, task_kind, task.model_spec.signature_name, inputs))
        else:
            raise WarmupError(f"record {index} is a {kind or 'empty log'}, which TF Serving cannot replay")
    if not requests:
        raise WarmupError("the file holds no records")
    return requests


def warmup_batches(make_inputs, fixed_batch: bool) -> list[Tensors]:
    """Warmup batches of sizes 1 and 2 (one batch when dim 0 is fixed), so both code paths warm up."""
    return [make_inputs(1)] if fixed_batch else [make_inputs(1), make_inputs(2)]
