"""Which tf.Example features a graph parses from a string input (Estimator classify/regress signatures).

Sample inputs for such a signature must be serialized tf.Example protos holding every feature the model
reads; the feature names, dtypes and shapes sit in the ParseExample op's constant inputs and attributes.
"""

from __future__ import annotations

from typing import Any

from kfp_tfserving.components.common.saved_model.graph_nodes import node_name
from kfp_tfserving.components.common.saved_model.tensor_spec import ExampleFeature, dtype_name

_PASS_THROUGH = ("Identity", "StopGradient")


def _resolve(name: str, nodes: dict[str, Any]) -> str:
    """Follow Identity-like ops back to the tensor's real producer."""
    seen = set()
    while name in nodes and nodes[name].op in _PASS_THROUGH and nodes[name].input and name not in seen:
        seen.add(name)
        name = node_name(nodes[name].input[0])
    return name


def _const_strings(tensor: str, nodes: dict[str, Any]) -> list[str]:
    node = nodes.get(_resolve(node_name(tensor), nodes))
    if node is None or node.op != "Const":
        return []
    return [v.decode() for v in node.attr["value"].tensor.string_val]  # feature keys: string constants


def _dense_shape(shape_proto) -> tuple[int, ...] | None:
    if shape_proto.unknown_rank or any(d.size < 0 for d in shape_proto.dim):
        return None  # FixedLenSequenceFeature: any number of values
    return tuple(int(d.size) for d in shape_proto.dim)


def _features_of(node, nodes: dict[str, Any]) -> list[ExampleFeature]:
    attr = node.attr
    dense_types = list(attr["Tdense"].list.type)
    dense_shapes = list(attr["dense_shapes"].list.shape)
    sparse_types = list(attr["sparse_types"].list.type)
    if node.op == "ParseExampleV2":
        sparse_keys = _const_strings(node.input[2], nodes)
        dense_keys = _const_strings(node.input[3], nodes)
        ragged_keys = _const_strings(node.input[4], nodes)
        ragged_types = list(attr["ragged_value_types"].list.type)
    else:  # ParseExample (v1): one scalar key input per feature
        n_sparse, n_dense = attr["Nsparse"].i, attr["Ndense"].i
        keys = [k for inp in node.input[2 : 2 + n_sparse + n_dense] for k in _const_strings(inp, nodes)]
        sparse_keys, dense_keys, ragged_keys, ragged_types = keys[:n_sparse], keys[n_sparse:], [], []
    features = [
        ExampleFeature(key, dtype_name(t), _dense_shape(s))
        for key, t, s in zip(dense_keys, dense_types, dense_shapes, strict=False)
    ]
    features += [
        ExampleFeature(k, dtype_name(t), None) for k, t in zip(sparse_keys, sparse_types, strict=False)
    ]
    features += [
        ExampleFeature(k, dtype_name(t), None) for k, t in zip(ragged_keys, ragged_types, strict=False)
    ]
    return features


def example_features(graph_def, tensor_name: str) -> tuple[ExampleFeature, ...] | None:
    """The features parsed from `tensor_name` by ParseExample ops in graph_def, or None when it is not parsed."""
    nodes = {n.name: n for n in graph_def.node}
    source = _resolve(node_name(tensor_name), nodes)
    found: dict[str, ExampleFeature] = {}
    for node in graph_def.node:
        parses = node.op in ("ParseExample", "ParseExampleV2") and node.input
        if parses and _resolve(node_name(node.input[0]), nodes) == source:
            for feature in _features_of(node, nodes):
                found.setdefault(feature.name, feature)
    return tuple(found.values()) or None
