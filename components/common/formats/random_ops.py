"""Outputs that depend on stateful random ops, and the PlaceholderWithDefault that switches them.

A TF1 graph built for training and inference alike often gates dropout (or noise) behind a
`PlaceholderWithDefault` such as `training`, `is_training` or `keep_prob`. When its default is the training
value, every run draws new random numbers: two runs of the same inputs differ, so parity cannot hold and TF
Serving would answer the same request differently each time. The fix is the user's, and simple: bind the
switch with `--feed`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kfp_tfserving.components.common.saved_model.graph_nodes import node_name, upstream

# Stateful random ops: each run draws anew (the Stateless* ones are functions of their seed and are not).
RANDOM_OPS = frozenset(
    {
        "RandomUniform",
        "RandomUniformInt",
        "RandomStandardNormal",
        "TruncatedNormal",
        "ParameterizedTruncatedNormal",
        "Multinomial",
        "RandomGamma",
        "RandomPoisson",
        "RandomPoissonV2",
        "RandomShuffle",
        "RandomCrop",
        "StatefulUniform",
        "StatefulUniformInt",
        "StatefulStandardNormalV2",
        "StatefulTruncatedNormal",
    }
)
_SWITCH_NAMES = re.compile(
    r"(^|[/_])(is_)?(train|training|phase|learning_phase|keep_prob|keep|dropout|mode)($|[/_:])", re.I
)


@dataclass(frozen=True)
class Switch:
    name: str
    default: str  # as --feed would spell it
    training: bool  # the default selects training behaviour (True, or keep_prob < 1)
    inference_value: str  # what to feed for inference

    def feed(self) -> str:
        return f"--feed {self.name}={self.inference_value}"


def _functions(graph_def) -> dict:
    return {f.signature.name: f for f in graph_def.library.function}


def _called_functions(node) -> list[str]:
    names = []
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        names.extend(f.name for f in value.list.func)
    return names


def _random_in_function(name: str, functions: dict, seen: set[str]) -> list[tuple[str, str]]:
    if name in seen or name not in functions:
        return []
    seen.add(name)
    found = []
    for node in functions[name].node_def:
        if node.op in RANDOM_OPS:
            found.append((node.op, f"{name}/{node.name}"))
        for called in _called_functions(node):
            found += _random_in_function(called, functions, seen)
    return found


def random_ops_feeding(graph_def, targets: list[str]) -> list[tuple[str, str]]:
    """(op type, node name) of the stateful random ops the targets depend on, inside called functions too."""
    functions, seen_functions = _functions(graph_def), set()
    found = []
    kept = upstream(graph_def, targets)
    for node in graph_def.node:
        if node.name not in kept:
            continue
        if node.op in RANDOM_OPS:
            found.append((node.op, node.name))
        for called in _called_functions(node):
            found += _random_in_function(called, functions, seen_functions)
    return found


def _const_value(node):
    from kfp_tfserving.components.common.tfenv import import_tensorflow

    tf = import_tensorflow()
    try:
        return tf.make_ndarray(node.attr["value"].tensor)
    except Exception:
        return None


def switches(graph_def, targets: list[str] | None = None) -> list[Switch]:
    """The PlaceholderWithDefault switches (bool ones, or named like training/keep_prob) with a constant
    default, upstream of the targets when given."""
    nodes = {n.name: n for n in graph_def.node}
    kept = upstream(graph_def, targets) if targets else set(nodes)
    out = []
    for node in graph_def.node:
        if node.op != "PlaceholderWithDefault" or node.name not in kept or not node.input:
            continue
        source = nodes.get(node_name(node.input[0]))
        while source is not None and source.op == "Identity" and source.input:
            source = nodes.get(node_name(source.input[0]))
        value = _const_value(source) if source is not None and source.op == "Const" else None
        if value is None or value.size != 1:
            continue
        scalar = value.reshape(-1)[0]
        if value.dtype == bool:
            out.append(Switch(node.name, str(bool(scalar)).lower(), bool(scalar), "false"))
        elif _SWITCH_NAMES.search(node.name) and value.dtype.kind == "f":
            is_keep = "keep" in node.name.lower()
            training = float(scalar) < 1.0 if is_keep else float(scalar) > 0.0
            out.append(Switch(node.name, f"{float(scalar):g}", training, "1.0" if is_keep else "0.0"))
        elif _SWITCH_NAMES.search(node.name) and value.dtype.kind in "iu":
            out.append(Switch(node.name, str(int(scalar)), bool(scalar), "0"))
    return out


def _listed(random_ops: list[tuple[str, str]]) -> str:
    shown = ", ".join(f"{op} '{name}'" for op, name in random_ops[:3])
    return shown + (f" and {len(random_ops) - 3} more" if len(random_ops) > 3 else "")


def training_mode_warning(graph_def, targets: list[str]) -> str:
    """A warning line when the targets depend on random ops and a switch upstream defaults to training."""
    random_ops = random_ops_feeding(graph_def, targets)
    on = [s for s in switches(graph_def, targets) if s.training]
    if not random_ops or not on:
        return ""
    names = ", ".join(f"'{s.name}' (default {s.default})" for s in on)
    return (
        f"warning: PlaceholderWithDefault {names} selects training mode, and the outputs depend on random "
        f"ops ({_listed(random_ops)}): bind it for inference with {' '.join(s.feed() for s in on)}"
    )


def random_outputs_problem(graph_def, targets: list[str], output: str) -> tuple[str, str] | None:
    """(what, fix) when `output` (computed by `targets`) depends on stateful random ops; None otherwise."""
    random_ops = random_ops_feeding(graph_def, targets)
    if not random_ops:
        return None
    found = switches(graph_def, targets)
    on = [s for s in found if s.training]
    what = f"output '{output}' depends on stateful random ops ({_listed(random_ops)}): each run draws anew"
    if on:
        names = ", ".join(f"'{s.name}' (default {s.default})" for s in on)
        return (
            f"{what}; PlaceholderWithDefault {names} switches them",
            f"bind it for inference with {' '.join(s.feed() for s in on)}",
        )
    return (
        what,
        "export the model in inference mode (no dropout or noise), or feed the value that turns them off",
    )
