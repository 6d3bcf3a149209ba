"""Which stage of `tensorflow::LoadSavedModel` a failed load stopped at, and what to do about it.

The C API's status says what failed, not where: the stage is read off the message against the meta graph
(the nodes it names, and whether they feed the saver's restore op or the init op), so that the load error
names the import, the restore or the init op and gives the fix that belongs to it.
"""

from __future__ import annotations

import re
from pathlib import Path

from kfp_tfserving.components.common.errors import UserError
from kfp_tfserving.components.common.saved_model.graph_nodes import node_name, upstream
from kfp_tfserving.components.common.saved_model.proto import init_op_name, meta_graph, read_saved_model_proto
from kfp_tfserving.components.common.saved_model.tags import Tags

_NODE = re.compile(r"\{\{node ([^}]+)\}\}|[Nn]ode '?([A-Za-z0-9_./-]+)'? ")
_FUNCTION = re.compile(r"\{\{function_node ([^}]+)\}\}")


def _named_nodes(message: str, graph_def) -> set[str]:
    """The graph's nodes a C++ error names: `{{node n}}`, and the callers of a `{{function_node f}}`."""
    names = {a or b for a, b in _NODE.findall(message)}
    functions = set(_FUNCTION.findall(message))
    if functions:
        for node in graph_def.node:
            called = {node.op} | {v.func.name for v in node.attr.values() if v.HasField("func")}
            if called & functions:
                names.add(node.name)
    return names


def load_stage(message: str, model_dir: Path, tags: Tags) -> str:
    """Which step of LoadSavedModel failed, read off its message (the C API says what, not where): a node
    of the restore op's graph named in it is the restore, the init op's (or its fed assets) the init."""
    if "Cannot assign a device" in message:  # placement: the graph's devices are not this machine's
        return "import"
    if "fed more than once" in message or "main op" in message:
        return "init"
    try:
        meta = meta_graph(read_saved_model_proto(model_dir), model_dir, tags)
    except UserError:
        return "import"
    nodes = _named_nodes(message, meta.graph_def)
    init = node_name(init_op_name(meta))
    restore = meta.saver_def.restore_op_name
    for_init = upstream(meta.graph_def, {init}) if init else set()
    for_restore = upstream(meta.graph_def, {restore}) if restore else set()
    if init and (init in nodes or re.search(rf"(?<![\w/.]){re.escape(init)}(?![\w/.])", message)):
        return "init"
    if nodes & (for_restore - for_init):
        return "restore"
    if nodes & for_init:
        return "init"
    if nodes & for_restore:
        return "restore"
    if "{{" in message:  # an op failed while running: the restore's run, or the init op's after it
        return "init" if init else "restore"
    return "import"


STAGE_TEXT = {
    "import": "the graph does not go into a session",
    "restore": "restoring the variables fails",
    "init": "running the init op fails",
}
LOAD_FIXES = {
    "import": "export the model again from its source with this TensorFlow (and without device pins)",
    "restore": "export the model again from its source; check that every file under variables/ is present",
    "init": "export the model again from its source; check that every file under assets/ is present",
}
