"""Hostile source graphs: a denied op is refused before any of the model runs (no canary file appears)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from kfp_tfserving.components.common.errors import FormatError
from kfp_tfserving.components.common.formats.graph_vetting import vet_source
from kfp_tfserving.components.export_savedmodel.exporter import export_model
from kfp_tfserving.components.load_model.loader import load_source


def _saved_model_writing(tf, path: Path, canary: Path) -> Path:
    module = tf.Module()
    module.w = tf.Variable([[2.0]] * 4)

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def serve(x):
        write = tf.io.write_file(str(canary), tf.strings.as_string(tf.reduce_sum(x)))
        with tf.control_dependencies([write]):
            return {"y": tf.matmul(x, module.w)}

    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return path


def _tf1_graph(tf, op: str, canary: Path):
    """A TF1 graph x -> y whose output depends on `op` (WriteFile to the canary, ReadFile or PyFunc)."""
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, 4], name="x")
        w = v1.get_variable("w", initializer=np.ones((4, 1), np.float32))
        if op == "WriteFile":
            side = tf.io.write_file(str(canary), tf.strings.as_string(tf.reduce_sum(x)))
        elif op == "ReadFile":
            side = tf.io.read_file("/etc/hostname")
        else:
            side = v1.py_func(lambda t: t, [x], tf.float32)
        with tf.control_dependencies([side]):
            tf.identity(tf.matmul(x, w), name="y")
    return graph


def _checkpoint(tf, directory: Path, op: str, canary: Path) -> Path:
    graph = _tf1_graph(tf, op, canary)
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        session.run(tf.compat.v1.global_variables_initializer())
        tf.compat.v1.train.Saver().save(session, str(directory / "model.ckpt"))
    return directory


def _frozen_graph(tf, path: Path, op: str, canary: Path) -> Path:
    graph = _tf1_graph(tf, op, canary)
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        session.run(tf.compat.v1.global_variables_initializer())
        frozen = tf.compat.v1.graph_util.convert_variables_to_constants(session, graph.as_graph_def(), ["y"])
    path.write_bytes(frozen.SerializeToString())
    return path


@pytest.fixture
def canary(tmp_path) -> Path:
    return tmp_path / "canary" / "written-by-the-model"


def _export_refused(source: Path, tmp_path: Path) -> FormatError:
    fetched, model_meta = tmp_path / "fetched", {}
    load_source(str(source), fetched, model_meta)
    with pytest.raises(FormatError) as err:
        export_model(fetched, model_meta, tmp_path / "exported", {})
    assert not (tmp_path / "exported").exists()
    return err.value


def test_saved_model_writing_a_file_is_refused_before_it_runs(tmp_path, tf, canary):
    canary.parent.mkdir()
    source = _saved_model_writing(tf, tmp_path / "src" / "writer", canary)
    err = _export_refused(source, tmp_path)
    assert "[denied-op]" in err.one_line() and "WriteFile" in err.one_line()
    assert str(source) in err.one_line() and "\n" not in err.one_line()
    assert not canary.exists()


@pytest.mark.parametrize(
    ("build", "name", "op"),
    [
        (_frozen_graph, "graph.pb", "WriteFile"),
        (_frozen_graph, "graph.pb", "ReadFile"),
        (_frozen_graph, "graph.pb", "PyFunc"),
        (_checkpoint, "ckpt", "WriteFile"),
        (_checkpoint, "ckpt", "PyFunc"),
    ],
    ids=lambda value: getattr(value, "__name__", value),
)
def test_tf1_graph_with_a_denied_op_is_refused_before_it_runs_or_restores(
    tmp_path, tf, canary, build, name, op
):
    """A frozen graph is refused before it runs, a checkpoint before its restore."""
    canary.parent.mkdir()
    source = build(tf, tmp_path / name, op, canary)
    err = _export_refused(source, tmp_path)
    assert f"[denied-op] the graph uses {op}" in err.one_line()
    assert not canary.exists()


def test_a_graph_with_an_unknown_op_is_refused_as_unregistered(tmp_path, tf):
    graph_def = tf.compat.v1.GraphDef()
    graph_def.node.add(name="x", op="Placeholder").attr["dtype"].type = 1
    graph_def.node.add(name="y", op="MyCompanyCustomOp", input=["x"])
    path = tmp_path / "custom.pb"
    path.write_bytes(graph_def.SerializeToString())
    with pytest.raises(FormatError, match=r"\[unregistered-op\] op\(s\) \['MyCompanyCustomOp'\]"):
        vet_source(path)


def test_clean_sources_pass_the_vetting(tmp_path, tf, tf2_saved_model, canary):
    vet_source(tf2_saved_model)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 2], name="x")
        tf.identity(x * 2.0, name="y")
    path = tmp_path / "clean.pb"
    path.write_bytes(graph.as_graph_def().SerializeToString())
    vet_source(path)


@pytest.mark.slow
def test_run_refuses_a_writing_saved_model_and_publishes_nothing(tmp_path, tf, canary):
    canary.parent.mkdir()
    source = _saved_model_writing(tf, tmp_path / "src" / "writer", canary)
    base = tmp_path / "serving" / "writer"
    proc = run_cli("run", str(source), "--base-path", str(base))
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "[denied-op]" in last and "WriteFile" in last and "unexpected" not in last
    assert not canary.exists() and not base.exists()
