"""`Session::Run` on fixed feeds and fetches, made as cheap per request as ctypes allows."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from kfp_tfserving.components.common.tf_c_api.library import CApiError, Output, _free_quietly, _quick, _vp
from kfp_tfserving.components.common.tf_c_api.tensors import (
    DT_STRING,
    _delete_input,
    _from_tensor,
    _to_tensor,
    tf_dtype,
)

if TYPE_CHECKING:
    from kfp_tfserving.components.common.tf_c_api.sessions import GraphSession


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
