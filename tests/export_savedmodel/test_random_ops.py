"""A TF1 graph whose dropout is switched by a `training` PlaceholderWithDefault that defaults to True: the
parity failure names the random ops and the switch, and `--feed training=false` publishes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import served_predict

from kfp_tfserving.components.common.errors import UserError
from kfp_tfserving.components.common.formats.random_ops import (
    random_ops_feeding,
    switches,
    training_mode_warning,
)
from kfp_tfserving.components.export_savedmodel.exporter import export_model
from kfp_tfserving.components.load_model.loader import load_source

W = np.arange(12, dtype=np.float32).reshape(4, 3) / 10.0


def _graph(tf, default_training: bool, cond: bool):
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        training = tf.compat.v1.placeholder_with_default(tf.constant(default_training), [], name="training")
        hidden = tf.matmul(x, tf.constant(W))
        if cond:  # tf.cond: the random op sits in a branch function (control flow v2)
            dropped = tf.cond(training, lambda: tf.nn.dropout(hidden, rate=0.5), lambda: hidden)
        else:  # the TF1 way without control flow: a mask selected by the switch
            mask = tf.cast(tf.random.uniform(tf.shape(hidden)) >= 0.5, tf.float32) * 2.0
            dropped = hidden * tf.where(training, mask, tf.ones_like(mask))
        tf.identity(dropped, name="y")
    return graph.as_graph_def()


@pytest.fixture(scope="module", params=["cond", "mask"])
def dropout_graph(request, tmp_path_factory, tf) -> Path:
    path = tmp_path_factory.mktemp("dropout") / "frozen.pb"
    path.write_bytes(_graph(tf, True, request.param == "cond").SerializeToString())
    return path


def _export(source: Path, tmp_path: Path, **options):
    fetched, model_meta, export_meta = tmp_path / "fetched", {}, {}
    load_source(str(source), fetched, model_meta)
    export_model(fetched, model_meta, tmp_path / "exported", export_meta, **options)
    return tmp_path / "exported", export_meta


def test_random_ops_and_their_switch_are_found(tf):
    for cond in (True, False):
        on = _graph(tf, True, cond)
        assert [op for op, _ in random_ops_feeding(on, ["y"])] == ["RandomUniform"]
        (switch,) = switches(on, ["y"])
        assert (switch.name, switch.default, switch.training) == ("training", "true", True)
        assert "--feed training=false" in training_mode_warning(on, ["y"])
        assert training_mode_warning(_graph(tf, False, cond), ["y"]) == ""
    plain = tf.Graph()
    with plain.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        tf.identity(x * 2.0, name="y")
    assert random_ops_feeding(plain.as_graph_def(), ["y"]) == []


def test_parity_failure_names_the_ops_the_switch_and_the_fix(tmp_path, tf, dropout_graph, capsys):
    with pytest.raises(UserError) as err:
        _export(dropout_graph, tmp_path)
    line = err.value.one_line()
    assert "RandomUniform" in line and "'training' (default true)" in line
    assert "--feed training=false" in line
    assert "check the export of this format" not in line
    assert "selects training mode" in capsys.readouterr().out  # warned at load, before parity


def test_feeding_the_switch_publishes_a_deterministic_version(tmp_path, tf, dropout_graph):
    exported, meta = _export(dropout_graph, tmp_path, feeds=["training=false"])
    assert meta["parity_passed"] is True
    x = np.random.default_rng(0).random((3, 4), dtype=np.float32)
    first = served_predict(exported, x=x)["y"]
    np.testing.assert_allclose(first, x @ W, rtol=1e-6)
    np.testing.assert_array_equal(served_predict(exported, x=x)["y"], first)
