"""numpy arrays to and from TF_Tensors: every dtype TF Serving's APIs carry, strings as 24-byte
TF_TString elements, and what each conversion allocates freed."""

from __future__ import annotations

import ctypes
import functools
import math

import numpy as np

from kfp_tfserving.components.common.tf_c_api.library import CApiError, _lib, _Status

_TSTRING_BYTES = 24  # sizeof(TF_TString): the element size of a DT_STRING tensor's buffer
DT_STRING = 7
DT_BFLOAT16 = 14
# TF_DataType enum -> numpy dtype, for every dtype the binding converts except bfloat16 (below).
_PLAIN_DTYPES = {
    1: np.dtype(np.float32),
    2: np.dtype(np.float64),
    3: np.dtype(np.int32),
    4: np.dtype(np.uint8),
    5: np.dtype(np.int16),
    6: np.dtype(np.int8),
    DT_STRING: np.dtype(object),
    8: np.dtype(np.complex64),
    9: np.dtype(np.int64),
    10: np.dtype(np.bool_),
    17: np.dtype(np.uint16),
    18: np.dtype(np.complex128),
    19: np.dtype(np.float16),
    22: np.dtype(np.uint32),
    23: np.dtype(np.uint64),
}
_PLAIN_ENUMS = {dtype: enum for enum, dtype in _PLAIN_DTYPES.items() if enum != DT_STRING}


@functools.cache
def _bfloat16() -> np.dtype:
    # Imported only for a bfloat16 tensor: ml_dtypes 0.7 takes about 0.55 s to import (it registers its
    # ufunc loops one by one), which would be a third of a check process that never sees one.
    import ml_dtypes  # TensorFlow's own dependency: bfloat16 as numpy knows it

    return np.dtype(ml_dtypes.bfloat16)


def numpy_dtype(enum: int) -> np.dtype | None:
    """The numpy dtype of a TF_DataType the binding converts (DT_STRING -> object), else None."""
    return _bfloat16() if enum == DT_BFLOAT16 else _PLAIN_DTYPES.get(enum)


def tensor_from_proto(serialized: bytes) -> np.ndarray:
    """A serialized TensorProto as numpy, decoded by TensorFlow's own Tensor::FromProto (what the model
    server does with a request's or a warmup record's tensors); CApiError when it refuses."""
    lib = _lib()
    buffer = lib.TF_NewBufferFromString(serialized, len(serialized))
    tensor = lib.TF_AllocateTensor(1, _dims((0,)), 1, 0)  # an empty float tensor, replaced
    try:
        with _Status(lib) as status:
            lib.TF_TensorFromProto(buffer, tensor, status.ptr)
            status.check()
    except CApiError:
        lib.TF_DeleteTensor(tensor)
        raise
    finally:
        lib.TF_DeleteBuffer(buffer)
    return _from_tensor(lib, tensor)


def tf_dtype(dtype: np.dtype) -> int:
    """The TF_DataType a numpy array is fed as: bytes, str and object arrays are DT_STRING."""
    if dtype.kind in "OSU":
        return DT_STRING
    enum = _PLAIN_ENUMS.get(dtype)
    if enum is None and dtype.name == "bfloat16" and dtype == _bfloat16():
        enum = DT_BFLOAT16
    if enum is None:
        fed = sorted([*map(str, _PLAIN_ENUMS), "bfloat16", "bytes/str/object"])
        raise CApiError(3, f"no TensorFlow dtype for numpy {dtype} (the binding feeds {fed})")
    return enum


def _dims(shape: tuple[int, ...]):
    return (ctypes.c_int64 * max(len(shape), 1))(*shape)


def _string_bytes(item) -> bytes:
    if isinstance(item, str):
        return item.encode()
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    raise CApiError(3, f"a string tensor's element is {type(item).__name__}, not bytes or str")


def _to_tensor(lib, value: np.ndarray, dtype: int) -> int:
    """A new TF_Tensor holding `value` as `dtype` (the caller deletes it with _delete_tensor)."""
    shape = value.shape
    if dtype == DT_STRING:
        items = [_string_bytes(item) for item in value.reshape(-1)]
        tensor = lib.TF_AllocateTensor(dtype, _dims(shape), len(shape), _TSTRING_BYTES * len(items))
        base = lib.TF_TensorData(tensor)
        for k, data in enumerate(items):
            element = base + _TSTRING_BYTES * k
            lib.TF_StringInit(element)
            lib.TF_StringCopy(element, data, len(data))
        return tensor
    value = np.ascontiguousarray(value)
    tensor = lib.TF_AllocateTensor(dtype, _dims(shape), len(shape), value.nbytes)
    if value.nbytes:
        ctypes.memmove(lib.TF_TensorData(tensor), value.ctypes.data, value.nbytes)
    return tensor


def _delete_input(lib, tensor: int, dtype: int, count: int) -> None:
    """Free a tensor made by _to_tensor: its TF_TStrings own heap memory that the tensor does not free."""
    if dtype == DT_STRING:
        base = lib.TF_TensorData(tensor)
        for k in range(count):
            lib.TF_StringDealloc(base + _TSTRING_BYTES * k)
    lib.TF_DeleteTensor(tensor)


def _from_tensor(lib, tensor: int) -> np.ndarray:
    """A numpy copy of a TF_Tensor that TF_SessionRun returned (deleted here)."""
    try:
        dtype = lib.TF_TensorType(tensor)
        shape = tuple([lib.TF_Dim(tensor, i) for i in range(lib.TF_NumDims(tensor))])
        data = lib.TF_TensorData(tensor)
        if dtype == DT_STRING:
            count = int(np.prod(shape, dtype=np.int64))
            out = np.empty(count, dtype=object)
            for k in range(count):
                element = data + _TSTRING_BYTES * k
                out[k] = ctypes.string_at(lib.TF_StringGetDataPointer(element), lib.TF_StringGetSize(element))
            return out.reshape(shape)
        np_dtype = numpy_dtype(dtype)
        if np_dtype is None:
            raise CApiError(12, f"the binding does not convert TF_DataType {dtype} (a fetched tensor)")
        nbytes = math.prod(shape) * np_dtype.itemsize
        if not nbytes:
            return np.empty(shape, dtype=np_dtype)
        # One copy, out of a numpy view of TensorFlow's buffer: the cheapest writable array from Python.
        return (
            np.frombuffer((ctypes.c_char * nbytes).from_address(data), dtype=np_dtype).reshape(shape).copy()
        )
    finally:
        lib.TF_DeleteTensor(tensor)
