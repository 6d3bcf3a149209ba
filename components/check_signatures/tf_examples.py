"""tf.Example features for string inputs parsed inside a function (TF2 / TFX `serve_tf_examples_fn`).

signatures_of() finds ParseExample ops in the top-level graph (TF1 Estimator exports); a TF2 SavedModel
parses inside its function library, which is searched here with the same shared parser.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

from kfp_tfserving.components.common.formats.base import ExampleFeature, TensorSpecInfo
from kfp_tfserving.components.common.formats.example_parsing import example_features

PARSE_OPS = ("ParseExample", "ParseExampleV2")


def function_example_features(meta) -> tuple[ExampleFeature, ...] | None:
    """The features of the first ParseExample op found in the function library (None if there is none)."""
    for fn in meta.graph_def.library.function:
        body = SimpleNamespace(node=list(fn.node_def))  # the shape example_features reads a graph in
        for node in fn.node_def:
            if node.op in PARSE_OPS and node.input:
                features = example_features(body, node.input[0])
                if features:
                    return features
    return None


def with_example_features(meta, specs: list[TensorSpecInfo]) -> list[TensorSpecInfo]:
    """The specs, string inputs of rank <= 1 marked as tf.Example when only a function parses them."""
    candidates = [
        s
        for s in specs
        if s.dtype == "string" and s.example_features is None and (s.shape is None or len(s.shape) <= 1)
    ]
    if not candidates or any(s.example_features for s in specs):
        return specs
    features = function_example_features(meta)
    if not features:
        return specs
    return [dataclasses.replace(s, example_features=features) if s in candidates else s for s in specs]
