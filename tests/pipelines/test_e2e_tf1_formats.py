"""`kfp-tfserving run` on TF1 sources: frozen graphs, checkpoints, Estimator exports; and their bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import published_versions, run_cli, run_cli_json, served_predict
from tf1_model_builders import W, build_checkpoint, build_estimator_export, build_frozen_graph

from kfp_tfserving.components.common.saved_model.edit import signature_methods
from kfp_tfserving.components.common.saved_model.proto import read_signatures

pytestmark = pytest.mark.slow


def _names(version_dir) -> tuple[list[str], list[str]]:
    sig = read_signatures(version_dir)["serving_default"]
    return [s.name for s in sig.inputs], [s.name for s in sig.outputs]


def test_frozen_graph_with_inputs_outputs_and_feed(tmp_path, tf):
    pb = build_frozen_graph(tf, tmp_path / "src" / "classifier.pb")
    base = tmp_path / "serving" / "classifier"
    result = run_cli_json(
        "run", str(pb), "--base-path", str(base), "--inputs", "x", "--outputs", "dense/logits,probs",
        "--feed", "temperature=2",
    )  # fmt: skip
    assert result["version"] == 1 and published_versions(base) == [1]
    assert _names(base / "1") == (["x"], ["dense/logits", "probs"])
    x = np.random.default_rng(7).random((3, 3), dtype=np.float32)
    served = served_predict(base / "1", x=x)
    np.testing.assert_allclose(served["dense/logits"], x @ W * 2.0, rtol=1e-5)


def test_checkpoint_detected_and_pruned(tmp_path, tf):
    source = build_checkpoint(tf, tmp_path / "train")
    base = tmp_path / "serving" / "ckpt"
    result = run_cli_json(
        "run", str(source), "--base-path", str(base), "--outputs", "probs", "--feed", "temperature=1"
    )
    assert result["version"] == 1
    assert _names(base / "1") == (["x"], ["probs"])
    assert result["signature"]["inputs"]["x"]["shape"] == [-1, 3]


def test_estimator_export_publishes_classify_signature(tmp_path, tf):
    source = build_estimator_export(tf, tmp_path / "export" / "exporter")
    base = tmp_path / "serving" / "est"
    result = run_cli_json("run", str(source), "--base-path", str(base))
    assert result["version"] == 1
    # The PUBLISHED proto still carries TF Serving's Classify and Regress method names.
    methods = signature_methods(base / "1")
    assert methods["serving_default"] == methods["classification"] == "tensorflow/serving/classify"
    assert methods["regression"] == "tensorflow/serving/regress"


def _random_pb(tmp_path, tf):
    path = tmp_path / "frozen.pb"
    path.write_bytes(np.random.default_rng(1).bytes(2048))
    return path, [], "not a TensorFlow GraphDef"


def _unbound_placeholder(tmp_path, tf):
    pb = build_frozen_graph(tf, tmp_path / "src" / "classifier.pb")
    return pb, ["--inputs", "x"], "--feed temperature=VALUE"


@pytest.mark.parametrize("make_case", [_random_pb, _unbound_placeholder], ids=["random-pb", "unbound"])
def test_bad_tf1_sources_fail_with_one_line_and_publish_nothing(tmp_path, tf, make_case):
    source, flags, expected = make_case(tmp_path, tf)
    base = tmp_path / "serving" / "bad"
    proc = run_cli("run", str(source), "--base-path", str(base), *flags)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert expected in lines[0]
    assert published_versions(base) == []
