"""The binding itself: the installed TensorFlow's C library, each function's C signature, statuses and
errors. Loaded once per process, without importing TensorFlow's Python runtime."""

from __future__ import annotations

import ctypes
import functools
import importlib.machinery
import sys
from pathlib import Path

from kfp_tfserving.components.common.tfenv import quiet_environment

_vp = ctypes.c_void_p


class CApiError(Exception):
    """A TF_Status that is not OK: `code` (TF_Code) and `message`, the C API's own text."""

    def __init__(self, code: int, message: str):
        self.code = code
        self.message = message
        super().__init__(message)


class Output(ctypes.Structure):
    """TF_Output: an operation and the index of one of its outputs, i.e. a tensor name `op:index`."""

    _fields_ = [("oper", _vp), ("index", ctypes.c_int)]


class _Buffer(ctypes.Structure):
    _fields_ = [("data", _vp), ("length", ctypes.c_size_t), ("data_deallocator", _vp)]


_SIGNATURES = {
    "TF_NewStatus": ([], _vp),
    "TF_DeleteStatus": ([_vp], None),
    "TF_GetCode": ([_vp], ctypes.c_int),
    "TF_Message": ([_vp], ctypes.c_char_p),
    "TF_NewGraph": ([], _vp),
    "TF_DeleteGraph": ([_vp], None),
    "TF_NewSessionOptions": ([], _vp),
    "TF_DeleteSessionOptions": ([_vp], None),
    "TF_SetConfig": ([_vp, ctypes.c_char_p, ctypes.c_size_t, _vp], None),
    "TF_NewBuffer": ([], ctypes.POINTER(_Buffer)),
    "TF_NewBufferFromString": ([ctypes.c_char_p, ctypes.c_size_t], ctypes.POINTER(_Buffer)),
    "TF_Version": ([], ctypes.c_char_p),
    "TF_GetAllOpList": ([], ctypes.POINTER(_Buffer)),
    "TF_TensorFromProto": ([ctypes.POINTER(_Buffer), _vp, _vp], None),
    "TF_DeleteBuffer": ([ctypes.POINTER(_Buffer)], None),
    "TF_LoadSessionFromSavedModel": (
        [
            _vp,
            _vp,
            ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.c_int,
            _vp,
            ctypes.POINTER(_Buffer),
            _vp,
        ],
        _vp,
    ),  # fmt: skip
    "TF_NewSession": ([_vp, _vp, _vp], _vp),
    "TF_CloseSession": ([_vp, _vp], None),
    "TF_DeleteSession": ([_vp, _vp], None),
    "TF_SessionRun": (
        [
            _vp,
            _vp,
            ctypes.POINTER(Output),
            ctypes.POINTER(_vp),
            ctypes.c_int,
            ctypes.POINTER(Output),
            ctypes.POINTER(_vp),
            ctypes.c_int,
            ctypes.POINTER(_vp),
            ctypes.c_int,
            _vp,
            _vp,
        ],
        None,
    ),  # fmt: skip
    "TF_GraphOperationByName": ([_vp, ctypes.c_char_p], _vp),
    "TF_OperationNumOutputs": ([_vp], ctypes.c_int),
    "TF_OperationOutputType": ([Output], ctypes.c_int),
    "TF_GraphGetTensorNumDims": ([_vp, Output, _vp], ctypes.c_int),
    "TF_GraphGetTensorShape": ([_vp, Output, ctypes.POINTER(ctypes.c_int64), ctypes.c_int, _vp], None),
    "TF_NewOperation": ([_vp, ctypes.c_char_p, ctypes.c_char_p], _vp),
    "TF_AddInput": ([_vp, Output], None),
    "TF_AddInputList": ([_vp, ctypes.POINTER(Output), ctypes.c_int], None),
    "TF_SetAttrValueProto": ([_vp, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, _vp], None),
    "TF_SetAttrType": ([_vp, ctypes.c_char_p, ctypes.c_int], None),
    "TF_FinishOperation": ([_vp, _vp], _vp),
    "TF_AllocateTensor": ([ctypes.c_int, ctypes.POINTER(ctypes.c_int64), ctypes.c_int, ctypes.c_size_t], _vp),
    "TF_DeleteTensor": ([_vp], None),
    "TF_TensorData": ([_vp], _vp),
    "TF_TensorByteSize": ([_vp], ctypes.c_size_t),
    "TF_TensorType": ([_vp], ctypes.c_int),
    "TF_NumDims": ([_vp], ctypes.c_int),
    "TF_Dim": ([_vp, ctypes.c_int], ctypes.c_int64),
    "TF_StringInit": ([_vp], None),
    "TF_StringCopy": ([_vp, ctypes.c_char_p, ctypes.c_size_t], None),
    "TF_StringGetDataPointer": ([_vp], _vp),
    "TF_StringGetSize": ([_vp], ctypes.c_size_t),
    "TF_StringDealloc": ([_vp], None),
}


# Every call but these few only reads, fills or frees a tensor or status and returns in nanoseconds to
# microseconds; the runner makes those through a second binding, PyDLL, which keeps the GIL. A CDLL call
# releases and retakes it, and right after TF_SessionRun, with TensorFlow's pool threads still spinning
# on a 2-core machine, each retake can wait for a core: measured, that was most of what a request cost
# above TF_SessionRun itself. The calls that may block release the GIL, so sessions run concurrently.
_BLOCKING = {
    "TF_LoadSessionFromSavedModel",
    "TF_NewSession",
    "TF_SessionRun",
    "TF_CloseSession",
    "TF_DeleteSession",
}


def _bind(lib: ctypes.CDLL, names) -> ctypes.CDLL:
    for name in names:
        args, result = _SIGNATURES[name]
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, result
    return lib


@functools.cache
def _library_path() -> str:
    """The installed tensorflow wheel's libtensorflow_cc.so.2, found without importing the package: the C
    library loads in about 0.4 s, TensorFlow's Python runtime in about 3 s (and 200 MB more)."""
    if "tensorflow" in sys.modules and getattr(sys.modules["tensorflow"], "__file__", None):
        return str(Path(sys.modules["tensorflow"].__file__).parent / "libtensorflow_cc.so.2")
    # The path finder, not importlib.util.find_spec: another thread may hold tf_protos' stand-in package
    # in sys.modules for a moment, and find_spec would look at that.
    spec = importlib.machinery.PathFinder.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise CApiError(5, "TensorFlow is not installed: the serving oracle runs its C library")
    return str(Path(next(iter(spec.submodule_search_locations))) / "libtensorflow_cc.so.2")


@functools.cache
def _lib() -> ctypes.CDLL:
    """The C API of the installed TensorFlow. A process that also imports TensorFlow's Python runtime,
    before or after, shares this very library: one op and kernel registry."""
    quiet_environment()  # read by the library as it loads (oneDNN, log level)
    return _bind(ctypes.CDLL(_library_path()), _SIGNATURES)


def version() -> str:
    """The TensorFlow version of the library (TF_Version)."""
    return _lib().TF_Version().decode()


def registered_op_names() -> frozenset[str]:
    """Every op registered in this process, as the library's own registry lists them (TF_GetAllOpList).
    Without TensorFlow's Python runtime that is what a model server built from the same sources has:
    no ops that only Python registers."""
    from kfp_tfserving.components.common.saved_model.tf_protos import tf_proto_module

    lib = _lib()
    buffer = lib.TF_GetAllOpList()
    try:
        op_list = tf_proto_module("tensorflow.core.framework.op_def_pb2").OpList.FromString(
            ctypes.string_at(buffer.contents.data, buffer.contents.length)
        )
    finally:
        lib.TF_DeleteBuffer(buffer)
    return frozenset(op.name for op in op_list.op)


@functools.cache
def _quick() -> ctypes.PyDLL:
    """The same library's non-blocking calls, made holding the GIL."""
    _lib()
    quick = set(_SIGNATURES) - _BLOCKING
    return _bind(ctypes.PyDLL(_library_path()), sorted(quick))


class _Status:
    """One TF_Status for one call: statuses are not shared between threads."""

    def __init__(self, lib):
        self._lib = lib
        self.ptr = lib.TF_NewStatus()

    def __enter__(self) -> _Status:
        return self

    def __exit__(self, *exc) -> None:
        self._lib.TF_DeleteStatus(self.ptr)

    def check(self) -> None:
        code = self._lib.TF_GetCode(self.ptr)
        if code:
            raise CApiError(code, self._lib.TF_Message(self.ptr).decode("utf-8", "replace"))


def _free_quietly(free, ptr: int) -> None:
    """A finalizer's foreign free: at interpreter shutdown the binding may already be gone, and the
    process frees the memory itself."""
    try:  # noqa: SIM105 (at interpreter shutdown contextlib may already be gone)
        free(ptr)
    except Exception:
        pass
