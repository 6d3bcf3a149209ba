"""The warmup file TF Serving replays before it serves a version: written by the check step, read by the oracle.

`assets.extra/tf_serving_warmup_requests` is a TFRecord of tensorflow.serving.PredictionLog. The server
refuses a version whose file has more than 1000 records or one request that fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

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


def write_warmup(path: Path, signature: str, batches: list[Tensors]) -> int:
    """Write one PredictLog per batch; returns the number of records."""
    from kfp_tfserving.components.common.tfenv import import_tensorflow

    tf = import_tensorflow()
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    batches = batches[:MAX_RECORDS]
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for batch in batches:
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = signature
            for name, value in batch.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return len(batches)


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
    from kfp_tfserving.components.common.tfenv import import_tensorflow

    tf = import_tensorflow()
    from google.protobuf.message import DecodeError
    from tensorflow_serving.apis import prediction_log_pb2

    requests = []
    try:
        for index, record in enumerate(tf.data.TFRecordDataset(str(path)).as_numpy_iterator()):
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
                inputs = {k: tf.make_ndarray(v) for k, v in req.inputs.items()}
                requests.append(WarmupRequest(index, "predict", req.model_spec.signature_name, inputs))
            elif kind in ("classify_log", "regress_log"):
                req = getattr(log, kind).request
                inputs = {"inputs": _examples(req.input)}
                requests.append(WarmupRequest(index, kind[:-4], req.model_spec.signature_name, inputs))
            elif kind == "multi_inference_log":
                req = log.multi_inference_log.request
                inputs = {"inputs": _examples(req.input)}
                for (
                    task
                ) in req.tasks:  # one request, several classify/regress signatures on the same examples
                    task_kind = task.method_name.rsplit("/", 1)[-1]
                    if task_kind not in ("classify", "regress"):
                        raise WarmupError(f"record {index}: multi-inference task method '{task.method_name}'")
                    requests.append(WarmupRequest(index, task_kind, task.model_spec.signature_name, inputs))
            else:
                raise WarmupError(
                    f"record {index} is a {kind or 'empty log'}, which TF Serving cannot replay"
                )
    except tf.errors.OpError as err:
        raise WarmupError(f"not a readable TFRecord file ({type(err).__name__})") from None
    if not requests:
        raise WarmupError("the file holds no records")
    return requests


def warmup_batches(make_inputs, fixed_batch: bool) -> list[Tensors]:
    """Warmup batches of sizes 1 and 2 (one batch when dim 0 is fixed), so both code paths warm up."""
    return [make_inputs(1)] if fixed_batch else [make_inputs(1), make_inputs(2)]
