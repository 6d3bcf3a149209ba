"""Import TensorFlow quietly: its start-up chatter is noise to users unless they ask for it."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "GRPC_VERBOSITY": "ERROR",
    "GLOG_minloglevel": "3",
    "CUDA_VISIBLE_DEVICES": "-1",
    "KERAS_BACKEND": "tensorflow",
}


def quiet_environment() -> None:
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


_sink_fd: int | None = None


def _sink() -> int:
    """One write-only descriptor on the null device, opened once: silencing runs around every served
    request, and a scratch file created and unlinked per call cost 20-250 us of a 0.3 ms request."""
    global _sink_fd
    if _sink_fd is None:
        _sink_fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    return _sink_fd


@contextlib.contextmanager
def silenced_stderr() -> Iterator[None]:
    """Send file descriptor 2 to the null device: native libraries write there behind Python's back."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(_sink(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def native_logging_off() -> bool:
    """TensorFlow's C++ logging is at FATAL only (TF_CPP_MIN_LOG_LEVEL=3, what quiet_environment sets
    unless the user chose otherwise): a running graph then writes nothing to stderr, even when it fails."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")) >= 3
    except ValueError:
        return False


def import_tensorflow():
    """TensorFlow, imported with its logging turned down."""
    quiet_environment()
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with silenced_stderr():
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
    return tf
