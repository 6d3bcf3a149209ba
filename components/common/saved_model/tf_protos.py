"""TensorFlow's generated protos (tensorflow.core.*_pb2, tensorflow_serving.apis) and its standalone
C++ bindings (record I/O, the checkpoint index reader) without TensorFlow's Python runtime.

`import tensorflow.core.protobuf.saved_model_pb2` runs tensorflow/__init__.py first: the whole runtime,
about 2 s and hundreds of MB, for a few message classes. The generated modules themselves need only
protobuf. Before TensorFlow is imported they are imported under a bare stand-in package named
`tensorflow` (its real directory, none of its __init__), which is then removed: the modules stay cached
under their real names, so a later `import tensorflow` finds and reuses them (one descriptor pool entry,
one class per message). Once TensorFlow is imported, they are imported the ordinary way.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

_lock = threading.Lock()


def _real_tensorflow() -> bool:
    """TensorFlow's own package is imported (the stand-in has no __file__)."""
    return getattr(sys.modules.get("tensorflow"), "__file__", None) is not None


def tf_proto_module(name: str) -> Any:
    """The generated module `name` (e.g. "tensorflow.core.protobuf.saved_model_pb2"), TensorFlow not imported."""
    if name in sys.modules or _real_tensorflow():
        return importlib.import_module(name)
    with _lock:  # another thread's stand-in may be in sys.modules until it is done
        if name in sys.modules or _real_tensorflow():  # imported meanwhile: the ordinary way
            return importlib.import_module(name)
        spec = importlib.util.find_spec("tensorflow")
        if spec is None or not spec.submodule_search_locations:
            return importlib.import_module(name)  # raises the usual ModuleNotFoundError
        stand_in = types.ModuleType("tensorflow")
        stand_in.__path__ = list(spec.submodule_search_locations)
        sys.modules["tensorflow"] = stand_in
        try:
            return importlib.import_module(name)
        finally:
            # Only the stand-in goes: `import tensorflow` later runs the real package.
            if sys.modules.get("tensorflow") is stand_in:
                del sys.modules["tensorflow"]


def saved_model_pb2() -> Any:
    return tf_proto_module("tensorflow.core.protobuf.saved_model_pb2")


def meta_graph_pb2() -> Any:
    return tf_proto_module("tensorflow.core.protobuf.meta_graph_pb2")


def types_pb2() -> Any:
    return tf_proto_module("tensorflow.core.framework.types_pb2")
