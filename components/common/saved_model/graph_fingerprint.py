"""Canonical hashes of a serving MetaGraphDef: what runs, without the names that change on every export.

Two exports of the same model differ in names and order, not in what they compute: function names carry
fresh ids (`__inference_call_99`), node order follows Python set order, and Keras numbers its tracked
variables in a per-process order, so a node like `probs/kernel_1` is restored from `_all_variables/1` in one
export and from `_all_variables/2` in the next. So nothing here hashes a name. Every node is hashed from its
op, its attributes and the hashes of its inputs (a Merkle hash of the dataflow graph); a function from its
argument and result types and the hashes of what it returns; a call carries the callee's hash instead of
its name. Starting from what TF Serving runs (signature outputs, the init op), unused nodes (the save path,
the serialized object graph) never enter the hash.

Identity that names used to provide comes from elsewhere: a tensor fed by a signature is hashed as that
signature input (which is what Session::Run makes of it), a variable restored from the checkpoint as the
value it is restored to, an asset path fed to the init op as the asset's sha256.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from kfp_tfserving.components.common.saved_model.proto import VARIABLE_OPS

# Attributes that only carry shape inference, grappler hints, colocation or debug names; none of them
# changes what a node computes. `_class` holds colocation constraints (`loc:@<node name>`): placement only.
SEMANTICS_FREE_ATTRS = frozenset(
    {
        "_output_shapes",
        "_read_only_resource_inputs",
        "_collective_manager_ids",
        "_class",
        "_has_manual_control_dependencies",
        "_user_specified_name",
        "_input_shapes",
        "_construction_context",
        "_original_func_name",
        "debug_name",
        # Which resource a handle op names (`probs/kernel_1`, `hash_table_<path>_<id>`): the identity of a
        # restored variable is its restored value (see _node_hash); shared resources across nodes in one
        # SavedModel do not occur in the exports this project writes.
        "shared_name",
    }
)


def digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def split_ref(ref: str) -> tuple[str, str]:
    """ "node:1" -> ("node", "1"); "node:out:2" -> ("node", "out:2"); "node" -> ("node", "0")."""
    name, _, output = ref.partition(":")
    return name, output or "0"


class FunctionHasher:
    """Content hashes of the library's functions, memoised; a function's name never enters its hash."""

    def __init__(self, library) -> None:
        self.functions = {f.signature.name: f for f in library.function}
        self._hashes: dict[str, str] = {}
        self._in_progress: set[str] = set()

    def function_hash(self, name: str) -> str:
        if name in self._hashes:
            return self._hashes[name]
        function = self.functions.get(name)
        if function is None or name in self._in_progress:  # an op or a (rare) recursive call
            return digest("op-or-recursive", name)
        self._in_progress.add(name)
        try:
            self._hashes[name] = self._hash_function(function)
        finally:
            self._in_progress.discard(name)
        return self._hashes[name]

    def _hash_function(self, function) -> str:
        signature = function.signature
        args = {arg.name: digest("arg", str(i)) for i, arg in enumerate(signature.input_arg)}
        scope = Scope({n.name: n for n in function.node_def}, self, fed=lambda name, output: args.get(name))
        results = [scope.tensor_hash(function.ret[arg.name]) for arg in signature.output_arg]
        control = sorted(scope.node_hash(split_ref(ref)[0]) for ref in function.control_ret.values())
        return digest(
            "function",
            *(_arg_def(a) for a in signature.input_arg),
            *(_arg_def(a) for a in signature.output_arg),
            *(a.SerializeToString(deterministic=True) for a in signature.attr),
            str(signature.is_stateful),
            *canonical_attrs(function.attr, self),
            _resource_aliasing(function),
            "results",
            *results,
            "control",
            *control,
        )


def _arg_def(arg) -> str:
    return f"{arg.type}|{arg.type_attr}|{arg.number_attr}|{arg.type_list_attr}|{arg.is_ref}"


def _resource_aliasing(function) -> str:
    """Which resource arguments alias each other, without the ids themselves."""
    groups: dict[int, list[int]] = {}
    for index, unique_id in function.resource_arg_unique_id.items():
        groups.setdefault(unique_id, []).append(index)
    return repr(sorted(sorted(g) for g in groups.values() if len(g) > 1))


def canonical_attrs(attrs, functions: FunctionHasher) -> list[str]:
    """Attributes minus the semantics-free ones, function references replaced by the callee's hash."""
    return [
        digest(key, _attr_value(attrs[key], functions))
        for key in sorted(attrs)
        if key not in SEMANTICS_FREE_ATTRS
    ]


def _attr_value(value, functions: FunctionHasher) -> str:
    kind = value.WhichOneof("value")
    if kind == "func":
        return digest(
            "func", functions.function_hash(value.func.name), *canonical_attrs(value.func.attr, functions)
        )
    if kind == "list" and value.list.func:
        return digest(
            "funcs",
            *(
                digest(functions.function_hash(f.name), *canonical_attrs(f.attr, functions))
                for f in value.list.func
            ),
        )
    return digest(value.SerializeToString(deterministic=True))


class Scope:
    """Merkle hashes of the nodes of one graph or function body.

    `fed(node, output)` returns the hash that stands for a tensor fed from outside (a signature input, a
    function argument, an asset path), or None; `bound(node)` extra identity of a node (a variable's value).
    """

    def __init__(
        self,
        nodes: dict,
        functions: FunctionHasher,
        fed: Callable[[str, str], str | None],
        bound: Callable[[str], str] = lambda name: "",
    ) -> None:
        self.nodes = nodes
        self.functions = functions
        self.fed = fed
        self.bound = bound
        self._hashes: dict[str, str] = {}
        self._open: set[str] = set()  # nodes whose inputs are being hashed

    def tensor_hash(self, ref: str) -> str:
        name, output = split_ref(ref.lstrip("^"))
        fed = self.fed(name, output)
        if fed is not None:
            return fed
        return digest("tensor", self.node_hash(name), output)

    def node_hash(self, name: str) -> str:
        # Iterative post-order walk: graphs from frozen models are deeper than Python's recursion limit.
        stack = [(name, False)]
        while stack:
            current, inputs_done = stack.pop()
            if current in self._hashes:
                continue
            node = self.nodes.get(current)
            if node is None:
                self._hashes[current] = digest("missing", current)
            elif inputs_done:
                self._open.discard(current)
                self._hashes[current] = self._compute(node)
            else:
                self._open.add(current)
                stack.append((current, True))
                for ref in node.input:
                    dep, output = split_ref(ref.lstrip("^"))
                    if dep not in self._hashes and dep not in self._open and self.fed(dep, output) is None:
                        stack.append((dep, False))
        return self._hashes[name]

    def _input_hash(self, ref: str) -> str:
        name, output = split_ref(ref.lstrip("^"))
        fed = self.fed(name, output)
        if fed is not None:
            return fed
        if name not in self._hashes:  # still open: the back edge of a TF1 while loop (NextIteration)
            node = self.nodes.get(name)
            return digest("back-edge", node.op if node is not None else name, output)
        return digest("tensor", self._hashes[name], output)

    def _compute(self, node) -> str:
        data = [self._input_hash(ref) for ref in node.input if not ref.startswith("^")]
        control = sorted(self._input_hash(ref) for ref in node.input if ref.startswith("^"))
        identity = self.bound(node.name) if node.op in VARIABLE_OPS else ""
        return digest(
            "node",
            node.op,
            node.device,
            *canonical_attrs(node.attr, self.functions),
            "inputs",
            *data,
            "control",
            *control,
            "identity",
            identity,
        )
