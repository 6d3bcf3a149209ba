"""TF1 graphs: read them, name their tensors, find their inputs (placeholders) and outputs (sinks)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from kfp_tfserving.components.common.errors import FormatError, message_line
from kfp_tfserving.components.common.saved_model.graph_nodes import node_name, upstream
from kfp_tfserving.components.common.tfenv import import_tensorflow, silenced_stderr

_INVALID_KEY_CHARS = re.compile(r"[^A-Za-z0-9_.\-/]")

# Ops that never make a serving output: bookkeeping, variables, training updates, checkpoint I/O.
_NOT_OUTPUT_OPS = {
    "NoOp",
    "Const",
    "Placeholder",
    "PlaceholderWithDefault",
    "VariableV2",
    "Variable",
    "VarHandleOp",
    "VarIsInitializedOp",
    "IsVariableInitialized",
    "Assert",
    "Print",
    "PrintV2",
    "SaveV2",
    "SaveSlices",
    "RestoreV2",
    "MergeV2Checkpoints",
    "ShardedFilename",
    "StringJoin",
    "Shape",
    "ShapeN",
    "Size",
    "Rank",
}
_NOT_OUTPUT_PREFIXES = ("Apply", "ResourceApply", "Assign", "Save", "Restore", "Summary", "Write")
_NOT_OUTPUT_SCOPES = re.compile(
    r"^(save|gradients|init|init_all_tables|report_uninitialized_variables|global_step)(_\d+)?(/|$)"
)


def tensor_name(name: str) -> str:
    """'x' and 'x:0' both name the first output of node x."""
    return name if ":" in name else f"{name}:0"


def signature_key(tensor: str) -> str:
    """The model's own tensor name as a signature key: 'probs/Softmax:0' -> 'probs/Softmax'."""
    node, _, index = tensor.partition(":")
    key = node if index in ("", "0") else f"{node}_{index}"
    return _INVALID_KEY_CHARS.sub("_", key) or "tensor"


def unique_keys(tensors: list[str]) -> list[str]:
    keys: list[str] = []
    for tensor in tensors:
        key, n = signature_key(tensor), 1
        while key in keys:
            key, n = f"{signature_key(tensor)}_{n}", n + 1
        keys.append(key)
    return keys


def strip_output_shapes(graph_def) -> None:
    """Drop `_output_shapes` attributes: stale ones from older TF make newer TF refuse the import."""
    for node in graph_def.node:
        node.attr.pop("_output_shapes", None)
    for function in graph_def.library.function:
        for node in function.node_def:
            node.attr.pop("_output_shapes", None)


def read_graph_def(path: Path):
    """A GraphDef from a binary `.pb` (or text `.pbtxt`) file."""
    import_tensorflow()
    from google.protobuf import message, text_format
    from tensorflow.core.framework import graph_pb2

    graph_def = graph_pb2.GraphDef()
    try:
        data = path.read_bytes()
        if path.suffix == ".pbtxt":
            text_format.Parse(data.decode(), graph_def)
        else:
            graph_def.ParseFromString(data)
    except (message.DecodeError, text_format.ParseError, UnicodeDecodeError, ValueError) as err:
        raise FormatError(
            f"{path}: not a TensorFlow GraphDef ({type(err).__name__})",
            "give a frozen graph written with tf.io.write_graph, or name the right --format",
        ) from None
    if not graph_def.node or any(not n.name or not n.op for n in graph_def.node):
        raise FormatError(
            f"{path}: not a TensorFlow GraphDef (no well-formed nodes)",
            "give a frozen graph written with tf.io.write_graph, or name the right --format",
        )
    strip_output_shapes(graph_def)
    return graph_def


def import_graph(graph_def, where: Path):
    """graph_def imported into a fresh tf.Graph with the nodes' own names; FormatError when TF refuses it."""
    tf = import_tensorflow()
    graph = tf.Graph()
    try:
        with graph.as_default(), silenced_stderr():
            tf.compat.v1.import_graph_def(graph_def, name="")
    except Exception as err:
        raise FormatError(
            f"{where}: TensorFlow cannot import the graph: {message_line(err)}",
            "the file is damaged, or needs custom ops this TensorFlow lacks",
        ) from None
    return graph


def placeholders(graph_def) -> list[str]:
    """Node names of the true placeholders (a PlaceholderWithDefault is optional, so not an input)."""
    return [n.name for n in graph_def.node if n.op == "Placeholder"]


def _is_output_candidate(node) -> bool:
    if node.op in _NOT_OUTPUT_OPS or node.op.startswith(_NOT_OUTPUT_PREFIXES):
        return False
    return not _NOT_OUTPUT_SCOPES.match(node.name)


def default_outputs(graph_def, graph: Any) -> list[str]:
    """The graph's sinks: outputs no other op reads, that depend on a placeholder.

    Training, saver and gradient ops are left out, and so are scalar sinks (losses, metrics) when
    batched ones exist.
    """
    # Any reader counts, gradients included: what only the gradients read (a loss) is not a prediction.
    consumed = {node_name(i) for n in graph_def.node for i in n.input if not i.startswith("^")}
    feeds = set(placeholders(graph_def))
    sinks = []
    for node in graph_def.node:
        if node.name in consumed or not _is_output_candidate(node):
            continue
        if not feeds & upstream(graph_def, [node.name]):
            continue  # a constant: nothing a request could change
        sinks.extend(t for t in graph.get_operation_by_name(node.name).outputs)
    batched = [t for t in sinks if t.shape.rank != 0]
    chosen = batched or sinks
    return [t.name for t in chosen if t.dtype != import_tensorflow().resource]
