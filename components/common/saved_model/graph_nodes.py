"""A GraphDef's nodes by name, without TensorFlow: the node a tensor or control reference names, and the
nodes a set of targets depends on."""

from __future__ import annotations

from collections.abc import Iterable


def node_name(ref: str) -> str:
    """'^n', 'n:1' and 'n' all name node n."""
    return ref.lstrip("^").split(":")[0]


def upstream(graph_def, targets: Iterable[str], boundaries: Iterable[str] = ()) -> set[str]:
    """Names of the graph's nodes the targets (nodes or tensors) depend on through data and control edges,
    the targets included, not looking past the boundaries."""
    nodes = {n.name: n for n in graph_def.node}
    stop = set(boundaries)
    seen: set[str] = set()
    stack = [node_name(t) for t in targets]
    while stack:
        name = stack.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        if name not in stop:
            stack.extend(node_name(i) for i in nodes[name].input)
    return seen
