"""Import TensorFlow quietly: its start-up chatter is noise to users unless they ask for it."""

from __future__ import annotations

import atexit
import contextlib
import gc
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


def _exit_without_collecting() -> None:
    """At exit, move every live object out of the cyclic collector's reach (gc.freeze).

    With TensorFlow imported, the interpreter's collections during shutdown walk its millions of objects:
    about 0.6 s of every step's exit here, for memory the OS takes back anyway. Frozen objects are still
    freed by reference counting as modules are torn down; only cycles are left to the OS, and atexit
    handlers, stream flushes and the exit status are untouched.
    """
    gc.freeze()


_exit_hook_registered = False


def import_tensorflow():
    """TensorFlow, imported with its logging turned down (and the process's exit kept short)."""
    global _exit_hook_registered
    quiet_environment()
    if not _exit_hook_registered:
        atexit.register(_exit_without_collecting)
        _exit_hook_registered = True
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with silenced_stderr():
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
    # TensorFlow's modules live as long as the process: out of the collector's reach, each later full
    # collection (the export's gc.collect() that frees the source model, the automatic ones while Keras
    # loads and traces) walks only the objects made since (0.3 s -> under 0.1 s per collection here).
    gc.freeze()
    return tf
