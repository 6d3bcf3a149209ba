"""Tiny SavedModels for the check step's tests: good ones, and ones breaking one check each."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from kfp_tfserving.components.check_signatures.static_checks import STATIC_CHECKS, ModelView
from kfp_tfserving.components.common.saved_model.proto import read_saved_model_proto
from kfp_tfserving.components.common.tfenv import import_tensorflow


def write_contract(path: Path, inputs: dict, outputs: dict) -> Path:
    """A contract file for serving_default: JSON when `path` ends in .json, else YAML."""
    contract = {"serving_default": {"inputs": inputs, "outputs": outputs}}
    path.write_text(json.dumps(contract) if path.suffix == ".json" else yaml.safe_dump(contract))
    return path


def static_findings(model_dir: Path, contract=None, serving_tf_version: str = "2.21.0") -> list:
    """Every static finding, without the fresh-process run."""
    view = ModelView(model_dir, read_saved_model_proto(model_dir), contract, serving_tf_version)
    return [f for check in STATIC_CHECKS for f in check(view)]


def codes(findings) -> set[str]:
    return {f.code for f in findings}


def save_module(path: Path, signatures: dict[str, Callable], **attrs) -> Path:
    """Save a tf.Module carrying `attrs` (variables) with the given tf.functions as signatures."""
    tf = import_tensorflow()
    module = tf.Module()
    for name, value in attrs.items():
        setattr(module, name, value)
    for name, fn in signatures.items():
        setattr(module, f"fn_{name}", fn)
    tf.saved_model.save(module, str(path), signatures=signatures)
    return path


def linear_module(path: Path) -> Path:
    """A good TF2 model: serving_default(x: float32[-1,4]) -> {y: float32[-1,1]} with variables."""
    tf = import_tensorflow()
    w = tf.Variable(np.arange(4, dtype=np.float32).reshape(4, 1))

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def serve(x):
        return {"y": tf.matmul(x, w)}

    return save_module(path, {"serving_default": serve}, w=w)


def tf1_builder(
    path: Path,
    build: Callable,
    tags: tuple[str, ...] = ("serve",),
    assets: bool = True,
    main_op: bool = False,
) -> Path:
    """A TF1 SavedModel from a graph-building function returning {signature name: SignatureDef}."""
    tf = import_tensorflow()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as session:
        signatures = build(v1)
        session.run(v1.global_variables_initializer())
        session.run(v1.tables_initializer())
        builder = v1.saved_model.Builder(str(path))
        builder.add_meta_graph_and_variables(
            session,
            list(tags),
            signature_def_map=signatures,
            assets_collection=graph.get_collection(v1.GraphKeys.ASSET_FILEPATHS) if assets else None,
            main_op=v1.tables_initializer() if main_op else None,
        )
        builder.save()
    return path


def tf1_predict(v1) -> dict:
    """A TF1 linear model: serving_default(features: float32[-1,3]) -> {score: float32[-1,1]}."""
    x = v1.placeholder(np.float32, [None, 3], name="features")
    w = v1.get_variable("w", initializer=np.ones((3, 1), np.float32))
    score = v1.identity(v1.matmul(x, w), name="score")
    return {"serving_default": v1.saved_model.predict_signature_def({"features": x}, {"score": score})}


def tf1_classifier(v1) -> dict:
    """An Estimator-like export: serialized tf.Example in, Classify and Predict signatures out."""
    serialized = v1.placeholder(np.str_, [None], name="input_example_tensor")
    parsed = v1.io.parse_example(
        serialized,
        {
            "age": v1.io.FixedLenFeature([1], np.float32),
            "clicks": v1.io.FixedLenFeature([2], np.int64),
            "city": v1.io.VarLenFeature(np.str_),
        },
    )
    dense = v1.concat([parsed["age"], v1.cast(parsed["clicks"], np.float32)], axis=1)
    w = v1.get_variable("w", initializer=np.full((3, 2), 0.1, np.float32))
    scores = v1.nn.softmax(v1.matmul(dense, w))
    batch = v1.shape(scores)[0]
    classes = v1.tile(v1.constant([["no", "yes"]]), [batch, 1])
    classify = v1.saved_model.classification_signature_def(serialized, classes, scores)
    predict = v1.saved_model.predict_signature_def({"examples": serialized}, {"probabilities": scores})
    return {"serving_default": predict, "classification": classify}


def rewrite_proto(model_dir: Path, edit: Callable) -> Path:
    """Apply `edit(proto)` to saved_model.pb in place."""
    proto = read_saved_model_proto(model_dir)
    edit(proto)
    (model_dir / "saved_model.pb").write_bytes(proto.SerializeToString())
    return model_dir


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def serve_meta(proto):
    return next(m for m in proto.meta_graphs if list(m.meta_info_def.tags) == ["serve"])
