"""One hash of what TF Serving will run from a SavedModel, equal for two exports of the same model.

Neither the bytes nor TensorFlow's own fingerprint.pb do this: two exports of the same `.keras` file in two
processes differ in saved_model.pb, variables.index and variables.data (different node order, and Keras
numbers its tracked variables in a per-process order, so checkpoint keys hold other variables), and in
fingerprint.pb's `graph_def_program_hash` and `checkpoint_hash`. The model fingerprint covers, for the
{serve} meta graph:

- every signature: method, input and output keys, dtypes, shapes and the canonical hash of the computation
  behind each output (graph_fingerprint: names dropped, functions by content, restored variables by value);
- the init op TF Serving runs at load, with asset paths standing for the assets' content;
- every checkpoint value (dtype, shape, bytes), read tensor by tensor, as a multiset: keys are not stable;
- every file under assets/ by relative path and sha256. assets.extra/ (the warmup file) is left out: it
  warms TF Serving up, it does not change an answer.

No model is loaded, and TensorFlow's Python runtime is not imported: the checkpoint is read by TensorFlow's
own reader (checkpoint_values.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kfp_tfserving.components.common.saved_model.graph_fingerprint import (
    FunctionHasher,
    Scope,
    digest,
    split_ref,
)
from kfp_tfserving.components.common.saved_model.proto import (
    INIT_OP_COLLECTIONS,
    VARIABLE_OPS,
    asset_file_defs,
    meta_graph,
    read_saved_model_proto,
)
from kfp_tfserving.components.common.saved_model.tensor_spec import dtype_name

# Bump when the canonical form changes: fingerprints of another scheme never compare equal.
SCHEME = "tfserving-v1"
CHECKPOINT_BOOKKEEPING = frozenset({"_CHECKPOINTABLE_OBJECT_GRAPH"})
_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class ModelFingerprint:
    digest: str  # "<scheme>:<sha256>"
    parts: dict[str, str]  # signatures, init, variables, assets: which part changed, for messages


def model_fingerprint(model_dir: Path) -> ModelFingerprint:
    """The fingerprint of the SavedModel in model_dir; FormatError when it cannot be read."""
    meta = meta_graph(read_saved_model_proto(model_dir), model_dir)
    values = checkpoint_value_digests(model_dir)
    restored = restored_checkpoint_keys(meta)
    assets = asset_digests(model_dir)
    functions = FunctionHasher(meta.graph_def.library)
    nodes = {node.name: node for node in meta.graph_def.node}
    asset_feeds = {
        split_ref(a.tensor_info.name): digest("asset", a.filename, assets.get(a.filename, "missing"))
        for a in asset_file_defs(meta)
    }

    def bound(node_name: str) -> str:
        key = restored.get(node_name)
        return digest("restored", values.get(key, "missing")) if key else digest("not restored", node_name)

    def scope(feeds: dict[tuple[str, str], str]) -> Scope:
        feeds = {**asset_feeds, **feeds}
        return Scope(nodes, functions, fed=lambda name, output: feeds.get((name, output)), bound=bound)

    signatures = []
    for key, signature in sorted(meta.signature_def.items()):
        feeds = {split_ref(info.name): digest("input", key, name) for name, info in signature.inputs.items()}
        computation = scope(feeds)
        signatures.append(
            digest(
                key,
                signature.method_name,
                *(_tensor_info(name, info, None) for name, info in sorted(signature.inputs.items())),
                *(_tensor_info(name, info, computation) for name, info in sorted(signature.outputs.items())),
            )
        )
    init = scope({})
    init_ops = [
        init.node_hash(split_ref(collection.node_list.value[0])[0])
        for name in INIT_OP_COLLECTIONS
        if (collection := meta.collection_def.get(name)) is not None and collection.node_list.value
    ]
    parts = {
        "signatures": digest(*signatures),
        "init": digest(*init_ops),
        "variables": digest(*sorted(values.values())),
        "assets": digest(*(f"{rel}\0{sha}" for rel, sha in sorted(assets.items()))),
    }
    return ModelFingerprint(f"{SCHEME}:{digest(*(f'{k}={v}' for k, v in sorted(parts.items())))}", parts)


def _tensor_info(name: str, info, computation: Scope | None) -> str:
    """A signature tensor: its key, dtype, shape and, for outputs, the hash of what computes it."""
    encoding = info.WhichOneof("encoding")
    if computation is None:
        where = ""
    elif encoding == "name":
        where = computation.tensor_hash(info.name)
    elif encoding == "coo_sparse":
        sparse = info.coo_sparse
        where = digest(
            *(
                computation.tensor_hash(t)
                for t in (
                    sparse.values_tensor_name,
                    sparse.indices_tensor_name,
                    sparse.dense_shape_tensor_name,
                )
            )
        )
    else:  # composite tensors: their components, in order
        where = digest(*(_tensor_info("", c, computation) for c in info.composite_tensor.components))
    return digest(
        name, str(info.dtype), info.tensor_shape.SerializeToString(deterministic=True), encoding or "", where
    )


def checkpoint_value_digests(model_dir: Path) -> dict[str, str]:
    """Checkpoint key -> sha256 of the value's dtype, shape and bytes, one tensor in memory at a time."""
    prefix = model_dir / "variables" / "variables"
    if not prefix.with_suffix(".index").is_file():
        return {}
    from kfp_tfserving.components.common.checkpoint_values import checkpoint_dtypes, checkpoint_values

    enums = checkpoint_dtypes(prefix)
    keys = sorted(key for key in enums if key not in CHECKPOINT_BOOKKEEPING)
    out = {}
    for key, value in checkpoint_values(prefix, keys, enums):
        h = hashlib.sha256(f"{dtype_name(enums[key])}|{list(getattr(value, 'shape', ()))}|".encode())
        if getattr(value, "dtype", None) is not None and value.dtype.kind == "O":  # strings: length-prefixed
            for item in value.ravel():
                data = item if isinstance(item, bytes) else str(item).encode()
                h.update(len(data).to_bytes(8, "little") + data)
        elif isinstance(value, bytes):
            h.update(value)
        else:
            # As raw bytes: a buffer of float16/bfloat16 elements has no format memoryview takes.
            h.update(np.ascontiguousarray(value).reshape(-1).view(np.uint8))
        out[key] = h.hexdigest()
        del value
    return out


def asset_digests(model_dir: Path) -> dict[str, str]:
    """Relative path under assets/ -> sha256 of the file."""
    root = model_dir / "assets"
    out = {}
    for path in sorted(root.rglob("*")) if root.is_dir() else []:
        if path.is_file():
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
            out[path.relative_to(root).as_posix()] = h.hexdigest()
    return out


def restored_checkpoint_keys(meta) -> dict[str, str]:
    """Variable node name -> the checkpoint key the saver's restore op assigns to it.

    TF1 savers assign in the graph (`save/Assign_3 = Assign(w, save/RestoreV2:3)`); TF2 exports call a
    `__inference__traced_restore_<id>` function with the variables as arguments. Anything else yields an
    empty map: variables then count by node name and by value, which can only make two exports differ.
    """
    graph = {node.name: node for node in meta.graph_def.node}
    functions = {f.signature.name: f for f in meta.graph_def.library.function}
    out: dict[str, str] = {}
    seen: set[str] = set()
    todo = (
        [split_ref(meta.saver_def.restore_op_name.lstrip("^"))[0]] if meta.saver_def.restore_op_name else []
    )
    while todo:
        node = graph.get(todo.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        todo.extend(split_ref(ref.lstrip("^"))[0] for ref in node.input)
        if node.op in ("Assign", "AssignVariableOp") and len(node.input) >= 2:
            variable, key = _through_identity(graph, node.input[0]), _restored_key(graph, node.input[1])
            if variable is not None and variable.op in VARIABLE_OPS and key:
                out[variable.name] = key
        elif "f" in node.attr and node.attr["f"].func.name in functions:
            body = functions[node.attr["f"].func.name]
            args = {arg.name: i for i, arg in enumerate(body.signature.input_arg)}
            inner = {n.name: n for n in body.node_def}
            for assign in (n for n in body.node_def if n.op == "AssignVariableOp" and len(n.input) >= 2):
                index = args.get(assign.input[0])
                key = _restored_key(inner, assign.input[1])
                if index is not None and index < len(node.input) and key:
                    variable = _through_identity(graph, node.input[index])
                    if variable is not None:
                        out[variable.name] = key
    return out


def _through_identity(nodes: dict, ref: str):
    node = nodes.get(split_ref(ref)[0])
    while node is not None and node.op == "Identity" and node.input:
        node = nodes.get(split_ref(node.input[0])[0])
    return node


def _restored_key(nodes: dict, ref: str) -> str:
    """The checkpoint key a RestoreV2 output stands for, following Identity nodes; "" when it is not one."""
    name, output = split_ref(ref)
    node = nodes.get(name)
    while node is not None and node.op == "Identity" and node.input:
        name, output = split_ref(node.input[0])
        node = nodes.get(name)
    if node is None or node.op != "RestoreV2" or len(node.input) < 2:
        return ""
    index = int(output.rsplit(":", 1)[-1])  # "3" in a graph, "tensors:3" in a function body
    names = _through_identity(nodes, node.input[1])
    if names is None or names.op != "Const":
        return ""
    keys = names.attr["value"].tensor.string_val
    return keys[index].decode() if index < len(keys) else ""
