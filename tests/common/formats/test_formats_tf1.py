"""TF1 frozen graphs and checkpoints: detection, names, feeds, pruning, parity; and their bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import served_predict
from tf1_model_builders import W, build_checkpoint, build_frozen_graph

from kfp_tfserving.components.common.errors import FormatError, UserError
from kfp_tfserving.components.common.formats import detect_format
from kfp_tfserving.components.common.saved_model.proto import read_saved_model_proto, read_signatures
from kfp_tfserving.components.export_savedmodel.exporter import export_model


def _expected_probs(x: np.ndarray, temperature: float, gain: float = 1.0) -> np.ndarray:
    logits = x.astype(np.float64) @ W * temperature * gain
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _export(source: Path, tmp_path: Path, **kwargs) -> tuple[Path, dict]:
    export_dir, metadata = tmp_path / "export", {}
    export_model(source, {}, export_dir, metadata, **kwargs)
    return export_dir, metadata


@pytest.fixture(scope="module")
def frozen_pb(tmp_path_factory, tf) -> Path:
    return build_frozen_graph(tf, tmp_path_factory.mktemp("frozen") / "classifier.pb")


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory, tf) -> Path:
    return build_checkpoint(tf, tmp_path_factory.mktemp("ckpt") / "train")


def _serve(tf, export_dir: Path, **inputs) -> dict:
    return served_predict(export_dir, **inputs)


def test_frozen_graph_defaults_to_its_placeholders_and_sinks_under_their_own_names(tmp_path, frozen_pb, tf):
    assert detect_format(frozen_pb)[0].name == "frozen_graph"
    export_dir, metadata = _export(frozen_pb, tmp_path)
    signature = read_signatures(export_dir)["serving_default"]
    # 'gain' has a default, so it is not an input; the only sink is 'probs'.
    assert [s.name for s in signature.inputs] == ["temperature", "x"]
    assert [s.name for s in signature.outputs] == ["probs"]
    assert signature.method_name == "tensorflow/serving/predict"
    assert metadata["parity_passed"] and set(metadata["parity"]) == {"probs"}
    x = np.random.default_rng(3).random((4, 3), dtype=np.float32)
    served = _serve(tf, export_dir, x=x, temperature=np.float32(0.5))
    np.testing.assert_allclose(served["probs"], _expected_probs(x, 0.5), atol=1e-5)


def test_frozen_graph_feed_binds_a_placeholder_and_inputs_override(tmp_path, frozen_pb, tf):
    export_dir, metadata = _export(
        frozen_pb, tmp_path, inputs=["x:0"], outputs=["dense/logits"], feeds=["temperature=2", "gain=3"]
    )
    signature = read_signatures(export_dir)["serving_default"]
    assert [s.name for s in signature.inputs] == ["x"]
    assert [s.name for s in signature.outputs] == ["dense/logits"]
    assert metadata["parity_passed"]
    x = np.random.default_rng(4).random((2, 3), dtype=np.float32)
    served = _serve(tf, export_dir, x=x)
    np.testing.assert_allclose(served["dense/logits"], x @ W * 2.0 * 3.0, rtol=1e-5)
    # The bound placeholders are constants now: no placeholder but x is left in the servable graph.
    meta = read_saved_model_proto(export_dir).meta_graphs[0]
    assert [n.name for n in meta.graph_def.node if n.op.startswith("Placeholder")] == ["x"]


def test_frozen_graph_output_needing_an_unbound_placeholder_names_it_dtype_shape_and_flag(
    tmp_path, frozen_pb
):
    with pytest.raises(FormatError) as err:
        _export(frozen_pb, tmp_path, inputs=["x"])
    message = str(err.value)
    assert "'temperature'" in message and "float32" in message and "shape []" in message
    assert "--feed temperature=VALUE" in message
    assert not (tmp_path / "export" / "saved_model.pb").exists()


@pytest.mark.parametrize(
    ("feed", "expected"),
    [
        ("temperature=[1,2]", "does not fit"),
        ("temperature=warm", "not a valid float32"),
        ("probs=1", "not a placeholder"),
    ],
)
def test_frozen_graph_bad_feeds_are_refused(tmp_path, frozen_pb, feed, expected):
    with pytest.raises(FormatError, match=expected):
        _export(frozen_pb, tmp_path, inputs=["x"], feeds=[feed])


def test_frozen_graph_unknown_output_names_the_tensor(tmp_path, frozen_pb):
    with pytest.raises(FormatError, match="no tensor 'nope:0'.*--outputs"):
        _export(frozen_pb, tmp_path, outputs=["nope"])


def test_random_bytes_named_pb_are_not_a_graph(tmp_path):
    bogus = tmp_path / "model.pb"
    bogus.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(FormatError, match="model.pb: not a TensorFlow GraphDef"):
        _export(bogus, tmp_path)


def test_checkpoint_with_empty_prefix_stale_state_file_and_bad_output_shapes(tmp_path, checkpoint_dir, tf):
    # The fixture is realistic: a plain import refuses its `_output_shapes`.
    with pytest.raises(ValueError), tf.Graph().as_default():
        tf.compat.v1.train.import_meta_graph(str(checkpoint_dir / ".meta"))
    handler, entry = detect_format(checkpoint_dir)
    assert (handler.name, entry.name) == ("checkpoint", ".meta")
    export_dir, metadata = _export(checkpoint_dir, tmp_path, outputs=["probs"], feeds=["temperature=1.5"])
    signature = read_signatures(export_dir)["serving_default"]
    assert ([s.name for s in signature.inputs], [s.name for s in signature.outputs]) == (["x"], ["probs"])
    assert metadata["parity_passed"]
    # Pruned and frozen: no variables, optimizer, saver or gradient ops in the servable graph.
    nodes = read_saved_model_proto(export_dir).meta_graphs[0].graph_def.node
    assert not [
        n.name for n in nodes if n.name.startswith(("gradients", "save", "GradientDescent", "labels"))
    ]
    assert not [n.op for n in nodes if n.op in ("VarHandleOp", "VariableV2", "ReadVariableOp")]
    x = np.random.default_rng(5).random((3, 3), dtype=np.float32)
    # The restored weights are the trained ones (W), not a fresh initialisation.
    np.testing.assert_allclose(_serve(tf, export_dir, x=x)["probs"], _expected_probs(x, 1.5), atol=1e-5)


def test_checkpoint_default_outputs_skip_training_ops(tmp_path, tf):
    directory = build_checkpoint(tf, tmp_path / "named", prefix="model.ckpt-10")
    export_dir, _ = _export(directory / "model.ckpt-10.meta", tmp_path, feeds=["temperature=1"])
    signature = read_signatures(export_dir)["serving_default"]
    # The loss (a scalar read only by gradients) and the optimizer's ops are not outputs; the labels it
    # needs are not inputs.
    assert [s.name for s in signature.outputs] == ["probs"]
    assert [s.name for s in signature.inputs] == ["x"]


def test_checkpoint_meta_without_index_is_refused(tmp_path, checkpoint_dir):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.ckpt-3.meta").write_bytes((checkpoint_dir / ".meta").read_bytes())
    with pytest.raises(FormatError, match=r"no model.ckpt-3.index next to its .meta.*\.data-\*"):
        _export(broken, tmp_path)


def test_checkpoint_meta_without_data_is_refused(tmp_path, checkpoint_dir):
    broken = tmp_path / "nodata"
    broken.mkdir()
    for name in (".meta", ".index"):
        (broken / name).write_bytes((checkpoint_dir / name).read_bytes())
    with pytest.raises(UserError, match="no .data-"):
        _export(broken, tmp_path)
