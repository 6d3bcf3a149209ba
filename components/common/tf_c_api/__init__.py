"""TensorFlow's C API through ctypes: `tensorflow::LoadSavedModel` and `Session::Run`, nothing else.

The tensorflow wheel's `libtensorflow_cc.so.2` exports the C API that tensorflow_model_server's loader
sits under: `TF_LoadSessionFromSavedModel` is a thin wrapper of `tensorflow::LoadSavedModel` (tag-set
match, graph into a DirectSession, saver restore, init op fed with asset paths) and `TF_SessionRun` is
`Session::Run`. This module binds them, converts numpy arrays to and from TF_Tensors of every dtype TF
Serving's APIs carry (strings as 24-byte TF_TString elements) and frees what it allocates. Errors are the
C API's status message, unaltered. Request rules (keys, methods, warmup) live in serving_oracle.py.

ctypes releases the GIL around each foreign call, so one session answers runs from several Python threads
at once, as Session::Run does in the server; nothing here holds per-call state outside the call.

library.py loads the library and declares each function's C signature; tensors.py converts arrays;
sessions.py loads a SavedModel (or builds a graph) into a session; runner.py runs it per request.
"""

from kfp_tfserving.components.common.tf_c_api.library import CApiError, Output, registered_op_names, version
from kfp_tfserving.components.common.tf_c_api.runner import Runner
from kfp_tfserving.components.common.tf_c_api.sessions import GraphSession, SavedModelSession
from kfp_tfserving.components.common.tf_c_api.tensors import (
    DT_BFLOAT16,
    DT_STRING,
    numpy_dtype,
    tensor_from_proto,
    tf_dtype,
)

__all__ = [
    "DT_BFLOAT16",
    "DT_STRING",
    "CApiError",
    "GraphSession",
    "Output",
    "Runner",
    "SavedModelSession",
    "numpy_dtype",
    "registered_op_names",
    "tensor_from_proto",
    "tf_dtype",
    "version",
]
