"""TensorFlow's C API through ctypes: `tensorflow::LoadSavedModel` and `Session::Run`, nothing else.

The tensorflow wheel's `libtensorflow_cc.so.2` exports the C API that tensorflow_model_server's loader
sits under: `TF_LoadSessionFromSavedModel` is a thin wrapper of `tensorflow::LoadSavedModel` (tag-set
match, graph into a DirectSession, saver restore, init op fed with asset paths) and `TF_SessionRun` is
`Session::Run`. This module binds them, converts numpy arrays to and from TF_Tensors of every dtype TF
Serving's APIs carry (strings as 24-byte TF_TString elements) and frees what it allocates. Errors are the
C API's status message, unaltered. Request rules (keys, methods, warmup) live in serving_oracle.py.

ctypes releases the GIL around each foreign call, so one session answers runs from several Python threads
at once, as Session::Run does in the server; nothing here holds per-call state outside the call.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.machinery
import math
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kfp_tfserving.components.common.tfenv import quiet_environment

_vp = ctypes.c_void_p
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


@functools.cache
def _quick() -> ctypes.PyDLL:
    """The same library's non-blocking calls, made holding the GIL."""
    _lib()
    quick = set(_SIGNATURES) - _BLOCKING
    return _bind(ctypes.PyDLL(_library_path()), sorted(quick))


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


class GraphSession:
    """A TF_Graph and a session running it. Built empty (for a graph made op by op), or loaded from a
    SavedModel (SavedModelSession)."""

    def __init__(self, config: bytes = b""):
        self._init_graph()
        options = self._lib.TF_NewSessionOptions()
        try:
            with _Status(self._lib) as status:
                self._configure(options, config, status)
                self.session = self._lib.TF_NewSession(self.graph, options, status.ptr)
                status.check()
        except BaseException:
            self.close()
            raise
        finally:
            self._lib.TF_DeleteSessionOptions(options)

    def _init_graph(self) -> None:
        lib = self._lib = _lib()
        self.export_dir = Path()
        self._graph_lock = threading.Lock()
        self._probe_count = 0
        self.session = None
        self.graph = lib.TF_NewGraph()

    def _configure(self, options: int, config: bytes, status: _Status) -> None:
        if config:
            self._lib.TF_SetConfig(options, config, len(config), status.ptr)
            status.check()

    def __enter__(self) -> GraphSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the graph ---------------------------------------------------------------------------------

    def output(self, name: str) -> Output:
        """The TF_Output of a tensor name (`op:index`, or `op` for index 0); KeyError if the graph has none."""
        op, _, index = name.partition(":")
        oper = self._lib.TF_GraphOperationByName(self.graph, op.encode())
        if not oper or (index and not index.isdigit()):
            raise KeyError(name)
        out = Output(oper, int(index or 0))
        if out.index >= self._lib.TF_OperationNumOutputs(oper):
            raise KeyError(name)
        return out

    def operation(self, name: str) -> int:
        """A TF_Operation by its node name; KeyError if the graph has none."""
        oper = self._lib.TF_GraphOperationByName(self.graph, name.encode())
        if not oper:
            raise KeyError(name)
        return oper

    def dtype(self, out: Output) -> int:
        return self._lib.TF_OperationOutputType(out)

    def static_shape(self, out: Output) -> tuple[int | None, ...] | None:
        """The tensor's shape as the graph infers it; None when its rank is unknown."""
        with _Status(self._lib) as status:
            rank = self._lib.TF_GraphGetTensorNumDims(self.graph, out, status.ptr)
            status.check()
            if rank < 0:
                return None
            dims = (ctypes.c_int64 * max(rank, 1))()
            self._lib.TF_GraphGetTensorShape(self.graph, out, dims, rank, status.ptr)
            status.check()
        return tuple(None if d < 0 else int(d) for d in dims[:rank])

    def add_operation(self, op_type: str, inputs: Sequence[Output], type_attrs: dict[str, int]) -> Output:
        """Append one op to the loaded graph (the session takes it in on the next run); its output 0."""
        with self._graph_lock:
            self._probe_count += 1
            name = f"kfp_tfserving_probe/{op_type}_{self._probe_count}"
            desc = self._lib.TF_NewOperation(self.graph, op_type.encode(), name.encode())
            for inp in inputs:
                self._lib.TF_AddInput(desc, inp)
            for attr, value in type_attrs.items():
                self._lib.TF_SetAttrType(desc, attr.encode(), value)
            with _Status(self._lib) as status:
                oper = self._lib.TF_FinishOperation(desc, status.ptr)
                status.check()
        return Output(oper, 0)

    def add_node(
        self, op_type: str, name: str, inputs: Sequence[Output | Sequence[Output]], attrs: dict[str, bytes]
    ) -> int:
        """Append one op whose inputs are tensors or lists of them (e.g. BatchFunction's in_tensors,
        captured_tensors) and whose attrs are serialized AttrValue protos, as a NodeDef holds them; its
        TF_Operation."""
        lib = self._lib
        with self._graph_lock, _Status(lib) as status:
            desc = lib.TF_NewOperation(self.graph, op_type.encode(), name.encode())
            for given in inputs:
                if isinstance(given, Output):
                    lib.TF_AddInput(desc, given)
                    continue
                lib.TF_AddInputList(desc, (Output * max(len(given), 1))(*given), len(given))
            for attr, value in attrs.items():
                lib.TF_SetAttrValueProto(desc, attr.encode(), value, len(value), status.ptr)
                # A refused attr leaves desc unfinished (a few bytes leaked): finishing it could add a
                # half-built node that the session would take in on every later run.
                status.check()
            oper = lib.TF_FinishOperation(desc, status.ptr)
            status.check()
        return oper

    # -- running -----------------------------------------------------------------------------------

    def runner(
        self, feeds: Sequence[Output], fetches: Sequence[Output], targets: Sequence[int] = ()
    ) -> Runner:
        return Runner(self, feeds, fetches, targets)

    def close(self) -> None:
        lib = self._lib
        if self.session:
            with _Status(lib) as status:
                lib.TF_CloseSession(self.session, status.ptr)
                lib.TF_DeleteSession(self.session, status.ptr)
            self.session = None
        if self.graph:
            lib.TF_DeleteGraph(self.graph)
            self.graph = None


class SavedModelSession(GraphSession):
    """A SavedModel loaded by `tensorflow::LoadSavedModel` into a session, and the TF_Graph it runs."""

    def __init__(self, export_dir: Path, tags: Sequence[str], config: bytes = b""):
        self._init_graph()
        lib = self._lib
        self.export_dir = Path(export_dir)
        options = lib.TF_NewSessionOptions()
        meta = lib.TF_NewBuffer()
        try:
            with _Status(lib) as status:
                self._configure(options, config, status)
                tag_array = (ctypes.c_char_p * max(len(tags), 1))(*[t.encode() for t in tags])
                session = lib.TF_LoadSessionFromSavedModel(
                    options,
                    None,
                    str(export_dir).encode(),
                    tag_array,
                    len(tags),
                    self.graph,
                    meta,
                    status.ptr,
                )
                status.check()
                self.session = session
                self.meta_graph_def: bytes = ctypes.string_at(meta.contents.data, meta.contents.length)
        except BaseException:
            self.close()
            raise
        finally:
            lib.TF_DeleteBuffer(meta)
            lib.TF_DeleteSessionOptions(options)


def _free_quietly(free, ptr: int) -> None:
    """A finalizer's foreign free: at interpreter shutdown the binding may already be gone, and the
    process frees the memory itself."""
    try:  # noqa: SIM105 (at interpreter shutdown contextlib may already be gone)
        free(ptr)
    except Exception:
        pass


class _ThreadStatus:
    """A TF_Status owned by one thread (statuses must not be shared), freed with the thread's state."""

    def __init__(self, lib):
        self._lib = lib
        self.ptr = lib.TF_NewStatus()

    def __del__(self) -> None:
        _free_quietly(self._lib.TF_DeleteStatus, self.ptr)


class _InputSlot:
    """One feed's TF_Tensor kept between runs of one thread: a request shaped like the previous one is
    copied into it through a numpy view of its buffer, with no allocation and no foreign call (most of a
    small request's cost through ctypes). The session holds no reference once TF_SessionRun returns."""

    def __init__(self, lib, value: np.ndarray, dtype: int):
        self._lib = lib
        self.shape, self.dtype = value.shape, value.dtype
        self.tensor = _to_tensor(lib, value, dtype)
        buffer = (ctypes.c_char * value.nbytes).from_address(lib.TF_TensorData(self.tensor))
        self.view = np.frombuffer(buffer, dtype=value.dtype).reshape(value.shape)

    def __del__(self) -> None:
        _free_quietly(self._lib.TF_DeleteTensor, self.tensor)


class _RunnerThread:
    """One thread's state for one Runner: its status, its input slots and the feed/fetch value arrays."""

    def __init__(self, lib, n_feeds: int, n_fetches: int):
        self.status = _ThreadStatus(lib)
        self.slots: list[_InputSlot | None] = [None] * n_feeds
        self.inputs = (_vp * max(n_feeds, 1))()
        self.outputs = (_vp * max(n_fetches, 1))()
        self.args = (ctypes.addressof(self.inputs), ctypes.addressof(self.outputs), self.status.ptr)


class Runner:
    """TF_SessionRun on fixed feeds, fetches and targets; the argument arrays are built once.

    Thread-safe: each thread has its own status, input tensors and value arrays; TF_SessionRun itself runs
    concurrently (ctypes releases the GIL around it), as Session::Run does for a server's request threads.
    """

    def __init__(self, model: GraphSession, feeds: Sequence[Output], fetches: Sequence[Output],
                 targets: Sequence[int] = ()):  # fmt: skip
        self._model = model
        self._quick = _quick()
        # Its own function object, every pointer passed as an address: no per-call type checks.
        self._session_run = model._lib["TF_SessionRun"]
        self._session_run.argtypes = (
            [_vp] * 4 + [ctypes.c_int] + [_vp] * 2 + [ctypes.c_int, _vp, ctypes.c_int]
        )
        self._session_run.argtypes += [_vp, _vp]
        self._session_run.restype = None
        self._feeds = (Output * max(len(feeds), 1))(*feeds)
        self._fetches = (Output * max(len(fetches), 1))(*fetches)
        self._targets = (_vp * max(len(targets), 1))(*targets)
        self._n_feeds, self._n_fetches, self._n_targets = len(feeds), len(fetches), len(targets)
        self._addresses = tuple(ctypes.addressof(a) for a in (self._feeds, self._fetches, self._targets))
        self._local = threading.local()

    def _thread_state(self) -> _RunnerThread:
        try:
            return self._local.state
        except AttributeError:
            state = self._local.state = _RunnerThread(self._quick, self._n_feeds, self._n_fetches)
            return state

    def run(self, values: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Session::Run: numpy `values` fed in the feeds' order, each as its own dtype (a dtype the graph
        does not take is the session's error, as for a server request); the fetches' values out."""
        lib = self._quick
        session = self._model.session
        if not session:
            raise CApiError(9, f"{self._model.export_dir}: the session is closed")
        if len(values) != self._n_feeds:
            raise ValueError(f"{len(values)} values for {self._n_feeds} feeds")
        state = self._thread_state()
        slots, inputs, outputs = state.slots, state.inputs, state.outputs
        made = None  # tensors made for this call only (strings, empty values)
        try:
            for k, value in enumerate(values):
                slot = slots[k]
                if slot is not None and slot.shape == value.shape and slot.dtype == value.dtype:
                    slot.view[...] = value
                    inputs[k] = slot.tensor
                    continue
                dtype = tf_dtype(value.dtype)
                if dtype == DT_STRING or not value.nbytes:
                    inputs[k] = _to_tensor(lib, value, dtype)
                    made = made or []
                    made.append((inputs[k], dtype, value.size))
                    continue
                slot = slots[k] = _InputSlot(lib, value, dtype)
                inputs[k] = slot.tensor
            in_address, out_address, status = state.args
            feeds, fetches, targets = self._addresses
            self._session_run(
                session, None, feeds, in_address, self._n_feeds, fetches, out_address,
                self._n_fetches, targets, self._n_targets, None, status,
            )  # fmt: skip
            results = []
            for k in range(self._n_fetches):
                tensor = outputs[k]
                if tensor:
                    outputs[k] = None
                    results.append(_from_tensor(lib, tensor))
            code = lib.TF_GetCode(status)
            if code:
                raise CApiError(code, lib.TF_Message(status).decode("utf-8", "replace"))
            return results
        finally:
            if made:
                for tensor, dtype, count in made:
                    _delete_input(lib, tensor, dtype, count)
