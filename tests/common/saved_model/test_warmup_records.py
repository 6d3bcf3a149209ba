"""The warmup file without TensorFlow's Python runtime: what it writes TensorFlow reads back, and what
TensorFlow writes it reads (tensors decoded by Tensor::FromProto, as the model server decodes them)."""

from __future__ import annotations

import numpy as np
import pytest

from kfp_tfserving.components.common.saved_model.warmup import (
    WarmupError,
    read_warmup,
    tensor_proto,
    write_warmup,
)

ARRAYS = {
    "f32": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    "f16": np.array([[0.5, -1.25]], dtype=np.float16),
    "i64": np.array([[-(2**40), 7]], dtype=np.int64),
    "u8": np.array([[0, 255, 3]], dtype=np.uint8),
    "flag": np.array([[True, False]]),
    "text": np.array([[b"caf\xc3\xa9", b""]], dtype=object),
    "scalar": np.array(3.5, dtype=np.float64),
}


def test_tensorflow_reads_what_is_written(tmp_path):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = tmp_path / "assets.extra" / "tf_serving_warmup_requests"
    assert write_warmup(path, "serving_default", [ARRAYS, {"f32": ARRAYS["f32"][:1]}]) == 2
    records = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
    assert len(records) == 2
    log = prediction_log_pb2.PredictionLog.FromString(records[0])
    assert log.predict_log.request.model_spec.signature_name == "serving_default"
    for name, expected in ARRAYS.items():
        got = tf.make_ndarray(log.predict_log.request.inputs[name])
        assert got.shape == expected.shape and got.dtype.kind == expected.dtype.kind, name
        np.testing.assert_array_equal(got, expected)


def test_what_tensorflow_writes_is_read_as_the_server_decodes_it(tmp_path):
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.signature_name = "scores"
    for name, value in ARRAYS.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    # A value given once for the whole shape: Tensor::FromProto repeats it (tf.make_ndarray does too).
    splat = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[2.5])
    splat.tensor_shape.dim.add(size=2)
    splat.tensor_shape.dim.add(size=3)
    request.inputs["splat"].CopyFrom(splat)
    path = tmp_path / "warmup"
    with tf.io.TFRecordWriter(str(path)) as writer:
        log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
        writer.write(log.SerializeToString())
    (got,) = read_warmup(path)
    assert (got.kind, got.signature) == ("predict", "scores")
    for name, expected in ARRAYS.items():
        np.testing.assert_array_equal(got.inputs[name], expected)
        assert got.inputs[name].shape == expected.shape
    np.testing.assert_array_equal(got.inputs["splat"], tf.make_ndarray(splat))


def test_tensor_proto_matches_tensorflows_for_every_fed_dtype():
    import tensorflow as tf

    for name, value in ARRAYS.items():
        ours, theirs = tensor_proto(value), tf.make_tensor_proto(value)
        assert ours.dtype == theirs.dtype, name
        assert ours.tensor_shape == theirs.tensor_shape, name
        np.testing.assert_array_equal(tf.make_ndarray(ours), tf.make_ndarray(theirs))


@pytest.mark.parametrize("damage", ["truncated", "flipped", "empty"])
def test_a_damaged_file_is_a_warmup_error(tmp_path, damage):
    path = tmp_path / "warmup"
    write_warmup(path, "", [{"x": ARRAYS["f32"]}])
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) - 5]
    elif damage == "flipped":
        data[20] ^= 0xFF
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    with pytest.raises(WarmupError):
        read_warmup(path)


def test_a_tensor_the_server_cannot_decode_is_named(tmp_path):
    from kfp_tfserving.components.common.saved_model.tf_protos import tf_proto_module

    bad = tensor_proto(ARRAYS["f32"])
    bad.tensor_content = bad.tensor_content[:-4]  # one float short of the shape
    predict_pb2 = tf_proto_module("tensorflow_serving.apis.predict_pb2")
    prediction_log_pb2 = tf_proto_module("tensorflow_serving.apis.prediction_log_pb2")
    request = predict_pb2.PredictRequest()
    request.inputs["x"].CopyFrom(bad)
    path = tmp_path / "warmup"
    record_io = tf_proto_module("tensorflow.python.lib.io._pywrap_record_io")
    writer = record_io.RecordWriter(str(path), record_io.RecordWriterOptions(""))
    writer.write(prediction_log_pb2.PredictionLog(predict_log={"request": request}).SerializeToString())
    writer.close()
    with pytest.raises(WarmupError, match="record 0"):
        read_warmup(path)
