"""Turn a TF1 graph into a servable: choose inputs and outputs, bind feeds, prune, export, run the source."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kfp_tfserving.components.common.errors import FormatError
from kfp_tfserving.components.common.formats.base import ExportOptions, Tensors, TensorSpecInfo
from kfp_tfserving.components.common.formats.random_ops import training_mode_warning
from kfp_tfserving.components.common.formats.tf1_graph import (
    default_outputs,
    import_graph,
    tensor_name,
    unique_keys,
)
from kfp_tfserving.components.common.saved_model.example_parsing import example_features
from kfp_tfserving.components.common.saved_model.graph_nodes import upstream
from kfp_tfserving.components.common.saved_model.proto import SERVING_DEFAULT
from kfp_tfserving.components.common.saved_model.tags import SERVE_TAG
from kfp_tfserving.components.common.tfenv import import_tensorflow, silenced_stderr


@dataclass
class GraphTensor:
    key: str  # signature key: the tensor's own name without ':0'
    tensor: str  # 'node:index' in the graph
    spec: TensorSpecInfo


@dataclass
class GraphPlan:
    """A pruned graph whose inputs are placeholders and whose fed placeholders are constants."""

    graph_def: Any
    inputs: list[GraphTensor]
    outputs: list[GraphTensor]
    feeds: dict[str, np.ndarray] = field(default_factory=dict)  # tensor name -> bound value

    def input_specs(self) -> list[TensorSpecInfo]:
        return [t.spec for t in self.inputs]


def _lookup(graph, name: str, where: Path, flag: str):
    try:
        return graph.get_tensor_by_name(tensor_name(name))
    except (KeyError, ValueError):
        placeholders = [op.name for op in graph.get_operations() if op.type == "Placeholder"]
        raise FormatError(
            f"{where}: no tensor '{name}' in the graph (given by {flag}; its placeholders are {placeholders})",
            f"check the name given to {flag}",
        ) from None


def _spec(key: str, tensor, graph_def=None) -> TensorSpecInfo:
    shape = None if tensor.shape.rank is None else tuple(tensor.shape.as_list())
    features = None
    if tensor.dtype.name == "string" and graph_def is not None:
        features = example_features(graph_def, tensor.name)
    return TensorSpecInfo(key, tensor.dtype.name, shape, features)


def _describe(tensor) -> str:
    shape = "unknown" if tensor.shape.rank is None else str(tensor.shape.as_list()).replace("None", "-1")
    return f"{tensor.dtype.name}, shape {shape}"


def parse_feed(name: str, text: str, tensor) -> np.ndarray:
    """A --feed value as the placeholder's dtype: a scalar or a JSON list; strings may be bare."""
    dtype = tensor.dtype
    try:
        if dtype.name == "string" and not text.startswith(("[", '"')):
            value: Any = text
        else:
            value = json.loads(text.lower() if dtype.is_bool else text)
        array = np.asarray(value, dtype=object if dtype.name == "string" else dtype.as_numpy_dtype)
        if dtype.is_integer and not np.array_equal(array, np.asarray(value, dtype=np.float64)):
            raise ValueError("not an integer")
    except (ValueError, TypeError) as err:
        raise FormatError(
            f"--feed {name}={text}: not a valid {dtype.name} value ({err})",
            "give a number, true/false, a string or a JSON list",
        ) from None
    if not tensor.shape.is_compatible_with(array.shape):
        raise FormatError(
            f"--feed {name}={text}: a value of shape {list(array.shape)} does not fit the placeholder ({_describe(tensor)})",
            "give a value of the placeholder's shape (a JSON list for a non-scalar)",
        )
    return array


def _constant_node(tf, node, value: np.ndarray, dtype) -> None:
    node.op = "Const"
    del node.input[:]
    node.attr.clear()
    node.attr["dtype"].type = dtype.as_datatype_enum
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value, dtype=dtype))


def _placeholder_node(node, tensor) -> None:
    node.op = "Placeholder"
    del node.input[:]
    node.attr.clear()
    node.attr["dtype"].type = tensor.dtype.as_datatype_enum
    node.attr["shape"].shape.CopyFrom(tensor.shape.as_proto())


def plan_graph(graph_def, outputs: list[str], options: ExportOptions, where: Path) -> GraphPlan:
    """Prune graph_def to `outputs`, cut at the inputs, bind --feed values; fail on unbound placeholders."""
    tf = import_tensorflow()
    graph = import_graph(graph_def, where)
    out_tensors = [_lookup(graph, name, where, "--outputs") for name in outputs]
    if not out_tensors:
        raise FormatError(f"{where}: found no output tensors in the graph", "name them with --outputs X,Y")
    fed = {}
    for name, text in options.feeds.items():
        tensor = _lookup(graph, name, where, "--feed")
        if tensor.op.type not in ("Placeholder", "PlaceholderWithDefault"):
            raise FormatError(
                f"--feed {name}: '{tensor.op.name}' is a {tensor.op.type}, not a placeholder",
                "feed only placeholders",
            )
        fed[tensor.op.name] = (tensor, parse_feed(name, text, tensor))
    given = [_lookup(graph, name, where, "--inputs") for name in options.inputs]
    kept = upstream(graph_def, [t.op.name for t in out_tensors], set(fed) | {t.op.name for t in given})
    if options.inputs:
        in_tensors = given
    else:
        in_tensors = [
            graph.get_tensor_by_name(f"{n.name}:0")
            for n in graph_def.node
            if n.name in kept and n.op == "Placeholder" and n.name not in fed
        ]
    bound = set(fed) | {t.op.name for t in in_tensors}
    for node in graph_def.node:
        if node.name in kept and node.op == "Placeholder" and node.name not in bound:
            tensor = graph.get_tensor_by_name(f"{node.name}:0")
            raise FormatError(
                f"{where}: the outputs need placeholder '{node.name}' ({_describe(tensor)}), "
                "which is neither an input nor fed",
                f"bind it with --feed {node.name}=VALUE, or add it to --inputs",
            )
    if not in_tensors:
        raise FormatError(
            f"{where}: the outputs depend on no placeholder", "name the inputs with --inputs A,B"
        )
    pruned = _rewrite(tf, graph_def, kept, fed, in_tensors)
    warning = training_mode_warning(pruned, [t.op.name for t in out_tensors])
    if warning:
        print(f"{where.name}: {warning}", flush=True)
    in_keys, out_keys = unique_keys([t.name for t in in_tensors]), unique_keys([t.name for t in out_tensors])
    return GraphPlan(
        pruned,
        [GraphTensor(k, t.name, _spec(k, t, pruned)) for k, t in zip(in_keys, in_tensors, strict=True)],
        [GraphTensor(k, t.name, _spec(k, t)) for k, t in zip(out_keys, out_tensors, strict=True)],
        {f"{name}:0": value for name, (_, value) in fed.items()},
    )


def _rewrite(tf, graph_def, kept: set[str], fed: dict, in_tensors: list) -> Any:
    inputs_by_node = {t.op.name: t for t in in_tensors}
    for t in in_tensors:
        if t.value_index != 0 and t.op.type != "Placeholder":
            raise FormatError(f"--inputs {t.name}: only an op's first output (':0') can become an input")
    pruned = type(graph_def)()
    pruned.versions.CopyFrom(graph_def.versions)
    pruned.library.CopyFrom(graph_def.library)
    for node in graph_def.node:
        if node.name not in kept:
            continue
        copy = pruned.node.add()
        copy.CopyFrom(node)
        if node.name in fed:
            tensor, value = fed[node.name]
            _constant_node(tf, copy, value, tensor.dtype)
        elif node.name in inputs_by_node and node.op != "Placeholder":
            _placeholder_node(copy, inputs_by_node[node.name])
    return pruned


def session_reference(session, plan: GraphPlan):
    """Run the source graph in `session` (the original, unpruned graph) on named inputs."""

    def run(inputs: Tensors) -> Tensors:
        feed = {t.tensor: inputs[t.key] for t in plan.inputs}
        feed.update(plan.feeds)
        values = session.run([t.tensor for t in plan.outputs], feed_dict=feed)
        return {t.key: np.asarray(v) for t, v in zip(plan.outputs, values, strict=True)}

    return run


def export_plan(plan: GraphPlan, export_dir: Path) -> None:
    """A TF1-style SavedModel ({serve}, serving_default predict signature) keeping the tensors' own names."""
    tf = import_tensorflow()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default(), silenced_stderr():
        v1.import_graph_def(plan.graph_def, name="")
        info = v1.saved_model.utils.build_tensor_info
        signature = v1.saved_model.signature_def_utils.build_signature_def(
            inputs={t.key: info(graph.get_tensor_by_name(t.tensor)) for t in plan.inputs},
            outputs={t.key: info(graph.get_tensor_by_name(t.tensor)) for t in plan.outputs},
            method_name=v1.saved_model.signature_constants.PREDICT_METHOD_NAME,
        )
        with v1.Session(graph=graph) as session:
            builder = v1.saved_model.Builder(str(export_dir))
            builder.add_meta_graph_and_variables(
                session, [SERVE_TAG], signature_def_map={SERVING_DEFAULT: signature}, strip_default_attrs=True
            )
            builder.save()


def requested_outputs(graph_def, options: ExportOptions, where: Path) -> list[str]:
    """--outputs, or else the graph's sinks."""
    if options.outputs:
        return [tensor_name(n) for n in options.outputs]
    return default_outputs(graph_def, import_graph(graph_def, where))
