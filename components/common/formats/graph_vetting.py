"""Vet a source model's graphs before anything of them runs: denied and unregistered ops are refused.

Loading a SavedModel runs its restore and init ops, a TF1 checkpoint's restore op comes from the checkpoint
itself, and parity runs the source model: a graph that writes files or calls Python would do so on the
export machine before the check step could refuse it. So every graph-bearing source (SavedModel, Estimator
export, hub module, TFX Trainer output, TF1 checkpoint `.meta`, frozen graph) is scanned here statically,
graph and function library, with the same op list and finding codes as the check step (graph_checks.py).
Keras `.keras` / `.h5` files hold no graph and are not scanned.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from kfp_tfserving.components.common.errors import FormatError

# Ops a model server must not run: Python callbacks (the server has no Python) and file or log I/O driven
# by request data. The check step's `denied-op` finding uses this same list.
DENIED_OPS = {
    "PyFunc": "calls back into Python, which tensorflow_model_server does not have",
    "PyFuncStateless": "calls back into Python, which tensorflow_model_server does not have",
    "EagerPyFunc": "calls back into Python, which tensorflow_model_server does not have",
    "ReadFile": "reads the server's file system at request time",
    "WriteFile": "writes the server's file system at request time",
    "MatchingFiles": "lists the server's file system at request time",
    "PrintV2": "prints on every request, flooding the server's log",
}
DENIED_FIX = "remove it from the serving path (tf.py_function, tf.io.read_file, tf.print ...)"

# The standard tensorflow_model_server links TF Text and TF Decision Forests ops, which a plain
# TensorFlow install does not register. Newer ops carry a namespace prefix; older ones are listed.
LINKED_OP_PREFIXES = ("TFText>", "TFSentencepiece>", "SimpleML", "YggdrasilDecisionForests")
LINKED_OPS = {
    "CaseFoldUTF8",
    "NormalizeUTF8",
    "NormalizeUTF8WithOffsetsMap",
    "FindSourceOffsets",
    "WhitespaceTokenizeWithOffsets",
    "WhitespaceTokenizeWithOffsetsV2",
    "UnicodeScriptTokenizeWithOffsets",
    "WordpieceTokenizeWithOffsets",
    "SplitMergeTokenizeWithOffsets",
    "SplitMergeFromLogitsTokenizeWithOffsets",
    "RegexSplitWithOffsets",
    "SentenceFragments",
    "SentenceFragmentsV2",
    "SentencepieceOp",
    "SentencepieceTokenizeOp",
    "SentencepieceTokenizeWithOffsetsOp",
    "SentencepieceDetokenizeOp",
    "SentencepieceIdToStringOp",
    "SentencepieceStringToIdOp",
    "SentencepieceVocabSizeOp",
    "ConstrainedSequence",
    "MaxSpanningTree",
    "RougeL",
    "TokenizerFromLogits",
}

_META_SUFFIX = ".meta"


def is_linked_op(op: str) -> bool:
    """True for TF Text / TF-DF ops: registered in the model server, not in plain TensorFlow."""
    return op in LINKED_OPS or op.startswith(LINKED_OP_PREFIXES)


def node_lists(graph_def) -> Iterator[tuple[str, list]]:
    """('graph', nodes) then (function name, nodes) for every function in the graph's library."""
    yield "graph", list(graph_def.node)
    for fn in graph_def.library.function:
        yield fn.signature.name, list(fn.node_def)


def graph_op_names(graph_def) -> set[str]:
    """Every op type a GraphDef and its functions use; calls of library functions are not ops."""
    functions = {fn.signature.name for fn in graph_def.library.function}
    return {n.op for _, nodes in node_lists(graph_def) for n in nodes} - functions


def _source_graph_defs(entry: Path) -> Iterator:
    """Every GraphDef in the source at `entry` (a SavedModel's meta graphs, a .meta, a frozen graph)."""
    from kfp_tfserving.components.common.formats.frozen_graph import GRAPH_SUFFIXES
    from kfp_tfserving.components.common.saved_model.proto import read_saved_model_proto

    if entry.is_dir():
        if (entry / "saved_model.pb").is_file() or (entry / "saved_model.pbtxt").is_file():
            for meta in read_saved_model_proto(entry).meta_graphs:
                yield meta.graph_def
        return
    if entry.name.endswith(_META_SUFFIX):
        from kfp_tfserving.components.common.formats.checkpoint import read_meta_graph

        yield read_meta_graph(entry).graph_def
    elif entry.suffix in GRAPH_SUFFIXES:
        from kfp_tfserving.components.common.formats.tf1_graph import read_graph_def

        yield read_graph_def(entry)


def _registered(ops: Iterable[str]) -> list[str]:
    from kfp_tfserving.components.common.tfenv import import_tensorflow

    import_tensorflow()
    from tensorflow.python.framework import op_def_registry

    return [op for op in ops if op_def_registry.get(op) is None and not is_linked_op(op)]


def vet_source(entry: Path, label: str = "") -> None:
    """Refuse the source at `entry` with the check step's finding code if a graph of it uses a denied or
    unregistered op. Reads protos only: nothing of the model runs. `label` names it in the message."""
    where = label or str(entry)
    used: set[str] = set()
    for graph_def in _source_graph_defs(entry):
        used |= graph_op_names(graph_def)
    denied = sorted(used & set(DENIED_OPS))
    if denied:
        op = denied[0]
        also = f" (also {', '.join(denied[1:])})" if len(denied) > 1 else ""
        raise FormatError(
            f"{where}: refused before running anything: [denied-op] the graph uses {op}{also}, "
            f"which {DENIED_OPS[op]}",
            DENIED_FIX,
        )
    unknown = sorted(_registered(used))
    if unknown:
        raise FormatError(
            f"{where}: refused before running anything: [unregistered-op] op(s) {unknown} are not "
            "registered in TensorFlow; the model server cannot load the model",
            "replace custom ops with standard TensorFlow ops, or serve with a model server built with them",
        )
