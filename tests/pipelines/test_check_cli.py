"""`kfp-tfserving check` as a user runs it, and `run --contract` through the whole pipeline."""

from __future__ import annotations

import json

import pytest
from check_builders import linear_module, write_contract
from conftest import published_versions, run_cli


@pytest.fixture(scope="module")
def model(tmp_path_factory, tf):
    return linear_module(tmp_path_factory.mktemp("cli") / "linear")


def test_check_prints_the_report_and_exits_zero_on_a_good_model(model):
    proc = run_cli("check", str(model), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["passed"] is True and report["counts"]["error"] == 0
    assert report["signatures"]["serving_default"]["inputs"] == {"x": {"dtype": "float32", "shape": [-1, 4]}}
    assert report["runtime"]["warmup"]["records"] == 2
    assert not (model / "assets.extra").exists()


def test_check_batching_measures_and_load_tests_without_writing(model):
    proc = run_cli("check", str(model), "--batching", "--serving-cpus", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    measured = json.loads(proc.stdout)["runtime"]["batching"]
    assert [p["batch"] for p in measured["points"]][:2] == [1, 2] and measured["serving_cpus"] == 3
    assert measured["decision"] and "file" not in measured
    if "parameters" in measured:  # a size above 1 was chosen: the load test ran on it (or says why not)
        assert measured["parameters"]["num_batch_threads"] == 3
        assert "verdict" in measured["load_test"] or "skipped" in measured["load_test"]
    assert not list(model.rglob("batching_params.pbtxt"))
    table = run_cli("check", str(model), "--batching")
    assert table.returncode == 0 and "Batching sweep" in table.stdout and "examples/CPU-s" in table.stdout


def test_check_with_a_contract_and_a_server_version(model, tmp_path):
    contract = write_contract(
        tmp_path / "contract.yaml",
        inputs={"x": {"dtype": "float32", "shape": [-1, 4]}},
        outputs={"y": {"dtype": "float32", "shape": [-1, 2]}},
    )
    proc = run_cli("check", str(model), "--contract", str(contract), "--serving-tf-version", "2.5")
    assert proc.returncode == 1
    assert "contract-shape" in proc.stdout and "version-skew" in proc.stdout
    assert "TF Serving would reject this model" in proc.stdout


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["check", "{missing}"], "not a directory"),
        (["check", "{model}", "--contract", "{missing}"], "contract file not found"),
        (["check", "{model}", "--serving-tf-version", "newest"], "not a TensorFlow version"),
    ],
)
def test_check_usage_errors_are_one_line(model, tmp_path, args, complaint):
    filled = [a.format(model=model, missing=tmp_path / "nope") for a in args]
    proc = run_cli(*filled)
    assert proc.returncode == 2
    assert complaint in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_run_with_a_contract_the_export_breaks_publishes_nothing(keras_two_io, tmp_path):
    contract = write_contract(
        tmp_path / "contract.json",
        inputs={"age": {"dtype": "float32"}, "city": {"dtype": "float32"}},
        outputs={"score": {"dtype": "float32"}, "label": {"dtype": "string"}},
    )
    base = tmp_path / "serving" / "two"
    proc = run_cli("run", str(keras_two_io), "--base-path", str(base), "--contract", str(contract))
    assert proc.returncode != 0
    assert "contract" in proc.stderr and "label" in proc.stderr
    assert published_versions(base) == []
