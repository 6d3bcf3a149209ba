"""TF Serving's BatchingParameters message, and the batching_params.pbtxt written into a version directory.

With `--enable_batching --enable_per_model_batching_parameters`, TF Serving reads `batching_params.pbtxt`
from each version directory. The message is tensorflow.serving.BatchingParameters
(tensorflow_serving/servables/tensorflow/session_bundle_config.proto). tensorflow-serving-api ships only
the apis/ and config/ protos, not servables/, so the message is declared here with the same package, name,
field numbers and types, in a private descriptor pool (no clash if the real module is ever imported), and
written with protobuf's text_format, exactly as TF Serving parses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2

BATCHING_PARAMS_FILE = "batching_params.pbtxt"

_INT64 = descriptor_pb2.FieldDescriptorProto.TYPE_INT64
_BOOL = descriptor_pb2.FieldDescriptorProto.TYPE_BOOL
_MESSAGE = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
_OPTIONAL = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
_REPEATED = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED

# (name, number, label, type, message type) as in session_bundle_config.proto
_FIELDS = (
    ("max_batch_size", 1, _OPTIONAL, _MESSAGE, ".google.protobuf.Int64Value"),
    ("batch_timeout_micros", 2, _OPTIONAL, _MESSAGE, ".google.protobuf.Int64Value"),
    ("max_enqueued_batches", 3, _OPTIONAL, _MESSAGE, ".google.protobuf.Int64Value"),
    ("num_batch_threads", 4, _OPTIONAL, _MESSAGE, ".google.protobuf.Int64Value"),
    ("thread_pool_name", 5, _OPTIONAL, _MESSAGE, ".google.protobuf.StringValue"),
    ("allowed_batch_sizes", 6, _REPEATED, _INT64, ""),
    ("pad_variable_length_inputs", 7, _OPTIONAL, _BOOL, ""),
)


def _message_class():
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    proto = descriptor_pb2.FileDescriptorProto(
        name="kfp_tfserving/session_bundle_config_batching.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=[wrappers.name],
    )
    message = proto.message_type.add(name="BatchingParameters")
    for name, number, label, kind, type_name in _FIELDS:
        message.field.add(name=name, number=number, label=label, type=kind, type_name=type_name or None)
    pool.Add(proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
    )


BatchingParameters = _message_class()


@dataclass
class BatchingConfig:
    max_batch_size: int
    batch_timeout_micros: int
    num_batch_threads: int
    max_enqueued_batches: int
    allowed_batch_sizes: list[int] = field(default_factory=list)
    pad_variable_length_inputs: bool = False

    def to_proto(self):
        params = BatchingParameters()
        params.max_batch_size.value = self.max_batch_size
        params.batch_timeout_micros.value = self.batch_timeout_micros
        params.num_batch_threads.value = self.num_batch_threads
        params.max_enqueued_batches.value = self.max_enqueued_batches
        params.allowed_batch_sizes.extend(self.allowed_batch_sizes)
        params.pad_variable_length_inputs = self.pad_variable_length_inputs
        return params

    def to_text(self) -> str:
        return text_format.MessageToString(self.to_proto())


def write_batching_params(config: BatchingConfig, version_dir: Path) -> Path:
    path = version_dir / BATCHING_PARAMS_FILE
    path.write_text(config.to_text())
    return path


def read_batching_params(path: Path):
    """The parsed message (raises text_format.ParseError on anything TF Serving would refuse to parse)."""
    return text_format.Parse(path.read_text(), BatchingParameters())
