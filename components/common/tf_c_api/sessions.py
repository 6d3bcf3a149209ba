"""A TF_Graph and the session running it: loaded from a SavedModel by `tensorflow::LoadSavedModel`,
or built op by op."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from pathlib import Path

from kfp_tfserving.components.common.tf_c_api.library import Output, _lib, _Status
from kfp_tfserving.components.common.tf_c_api.runner import Runner


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
