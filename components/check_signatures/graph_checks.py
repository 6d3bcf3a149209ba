"""Checks on the graph's ops: denied and XLA-only ops (9) and initializers reading outside assets/ (11).

Whether every op is registered needs a clean TensorFlow process; runtime_checks.py asks its registry, with the op
names collected here.
"""

from __future__ import annotations

import re

from kfp_tfserving.components.check_signatures.findings import ERROR, WARNING, Finding
from kfp_tfserving.components.common.formats.graph_vetting import (  # one op list for both steps
    DENIED_FIX,
    DENIED_OPS,
    graph_op_names,
    is_linked_op,
    node_lists,
)
from kfp_tfserving.components.common.saved_model.proto import asset_file_defs

# Ops that read a file when the model loads or runs -> which of their inputs is the file's path.
FILE_READING_OPS = {
    "InitializeTableFromTextFile": 1,
    "InitializeTableFromTextFileV2": 1,
    "ReadFile": 0,
    "TextLineDataset": 0,
    "TFRecordDataset": 0,
    "TFRecordDatasetV2": 0,
    "FixedLengthRecordDataset": 0,
    "FixedLengthRecordDatasetV2": 0,
    "LoadAndRemapMatrix": 0,
}
_ABSOLUTE = re.compile(r"^(/|[A-Za-z]:[\\/]|\\\\|[a-z][a-z0-9+.-]*://)")


def used_op_names(meta) -> list[str]:
    """Every op type the graph and its functions use; calls of library functions are not ops."""
    return sorted(graph_op_names(meta.graph_def))


def unregistered_findings(unregistered: list[str]) -> list[Finding]:
    """Findings for op names a clean TensorFlow process does not register (TF Text / TF-DF excepted)."""
    unknown = [op for op in unregistered if not is_linked_op(op)]
    if not unknown:
        return []
    return [
        Finding(
            "unregistered-op",
            ERROR,
            f"op(s) {unknown} are not registered in a clean TensorFlow process; the model server cannot "
            "load the model",
            "replace custom ops with standard TensorFlow ops, or serve with a model server built with them",
        )
    ]


def check_ops(view) -> list[Finding]:
    if view.serve is None:
        return []
    found = []
    used = set(used_op_names(view.serve))
    for op in sorted(used & set(DENIED_OPS)):
        found.append(
            Finding(
                "denied-op",
                ERROR,
                f"the graph uses {op}, which {DENIED_OPS[op]}",
                DENIED_FIX,
                tensor=op,
            )
        )
    xla = sorted(
        fn.signature.name
        for fn in view.serve.graph_def.library.function
        if "_XlaMustCompile" in fn.attr and fn.attr["_XlaMustCompile"].b
    )
    if xla:
        found.append(
            Finding(
                "xla-must-compile",
                WARNING,
                f"function(s) {xla[:3]}{' ...' if len(xla) > 3 else ''} must be XLA-compiled "
                "(jit_compile=True); model servers built without XLA JIT fail to run them",
                "export with jit_compile=False unless the target model server has XLA",
            )
        )
    return found


def _string_const(node) -> list[str]:
    if node.op != "Const" or node.attr["dtype"].type != 7:  # 7: DT_STRING
        return []
    tensor = node.attr["value"].tensor
    return [v.decode("utf-8", "replace") for v in tensor.string_val]


def _asset_tensors(meta) -> set[str]:
    """Graph tensors the loader points into assets/."""
    return {a.tensor_info.name.split(":")[0] for a in asset_file_defs(meta)}


def _trace_to_node(nodes: dict, ref: str):
    """The node behind an input reference, looking through Identity ops."""
    seen = 0
    node = nodes.get(ref.lstrip("^").split(":")[0])
    while node is not None and node.op == "Identity" and node.input and seen < 32:
        node = nodes.get(node.input[0].lstrip("^").split(":")[0])
        seen += 1
    return node


def check_initializer_files(view) -> list[Finding]:
    if view.serve is None:
        return []
    assets = _asset_tensors(view.serve)
    found = []
    for where, node_list in node_lists(view.serve.graph_def):
        nodes = {n.name: n for n in node_list}
        for node in node_list:
            slot = FILE_READING_OPS.get(node.op)
            if slot is None or len(node.input) <= slot:
                continue
            source = _trace_to_node(nodes, node.input[slot])
            if source is None or (where == "graph" and source.name in assets):
                continue  # a function argument or a loader-fed asset path: resolved under assets/
            for path in _string_const(source):
                kind = "an absolute path" if _ABSOLUTE.match(path) else "a path"
                found.append(
                    Finding(
                        "file-outside-assets",
                        ERROR,
                        f"{node.op} '{node.name}' reads '{path}', {kind} outside the SavedModel's assets/ "
                        "that will not exist on the server",
                        "make the file an asset (tf.saved_model.Asset, or the TF1 builder's "
                        "assets_collection) so it is copied into assets/",
                        tensor=node.name,
                    )
                )
    return found
