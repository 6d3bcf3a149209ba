"""`submit` and `schedule` against the KFP API stand-in (tests/kfp_api_standin.py).

A real KFP API server cannot run on this machine (it needs a Kubernetes cluster), so these tests check the
HTTP boundary instead: the stand-in answers the v2beta1 REST endpoints kfp.Client calls and records every
request; the tests assert what was sent (method, path, body) and what was not.
"""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from kfp_tfserving.pipelines.cli import main
from kfp_tfserving.pipelines.cli.compile import pipeline_yaml


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_submit_posts_the_committed_pipeline_with_typed_parameters(kfp_server):
    result = cli(
        "submit", "export_to_serving", "--host", kfp_server.url, "--run-name", "nightly",
        "-p", "source_uri=gs://models/emotion.h5", "-p", "base_path=/models/emotion",
        "-p", "parity_atol=0.001", "-p", "force=true", "-p", "inputs=a,b", "-p", "version=3",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (run,) = kfp_server.posted("runs")
    assert run["display_name"] == "nightly"
    assert run["experiment_id"] == "exp-existing"  # the existing experiment is found, not created again
    assert kfp_server.posted("experiments") == []
    assert run["runtime_config"]["parameters"] == {
        "source_uri": "gs://models/emotion.h5",
        "base_path": "/models/emotion",
        "parity_atol": 0.001,
        "force": True,
        "inputs": ["a", "b"],
        "version": 3,
    }
    committed = yaml.safe_load(pipeline_yaml("export_to_serving").read_text())
    assert run["pipeline_spec"]["root"] == committed["root"]
    assert run["pipeline_spec"]["deploymentSpec"] == committed["deploymentSpec"]
    assert "run-42" in result.output


def test_submit_creates_a_missing_experiment_first(kfp_server):
    result = cli(
        "submit", "retrain_and_export", "--host", kfp_server.url, "--experiment", "retraining",
        "-p", "base_path=/models/tiny",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (experiment,) = kfp_server.posted("experiments")
    assert experiment["display_name"] == "retraining"
    (run,) = kfp_server.posted("runs")
    assert run["experiment_id"] == kfp_server.experiments["retraining"]
    assert run["pipeline_spec"]["pipelineInfo"]["name"] == "retrain-and-export"


def test_submit_takes_a_yaml_path(kfp_server, tmp_path):
    copy = tmp_path / "mine.yaml"
    copy.write_text(pipeline_yaml("export_to_serving").read_text())
    result = cli("submit", str(copy), "--host", kfp_server.url, "-p", "source_uri=/m", "-p", "base_path=/b")
    assert result.exit_code == 0, result.output
    (run,) = kfp_server.posted("runs")
    assert run["display_name"].startswith("mine.yaml")


def test_schedule_posts_a_recurring_run_with_the_cron_and_one_at_a_time(kfp_server):
    result = cli(
        "schedule", "retrain_and_export", "--host", kfp_server.url, "--cron", "0 0 2 * * *",
        "-p", "base_path=/models/tiny", "-p", "epochs=5",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (recurring,) = kfp_server.posted("recurringruns")
    assert recurring["trigger"]["cron_schedule"]["cron"] == "0 0 2 * * *"
    assert int(recurring["max_concurrency"]) == 1
    assert recurring["no_catchup"] is True
    assert recurring["experiment_id"] == "exp-existing"
    assert recurring["display_name"] == "retrain_and_export"
    assert recurring["runtime_config"]["parameters"] == {"base_path": "/models/tiny", "epochs": 5}
    assert recurring["pipeline_spec"]["pipelineInfo"]["name"] == "retrain-and-export"
    assert "rr-7" in result.output


@pytest.mark.parametrize(
    "cron, complaint",
    [
        ("0 2 * * *", "5 field(s), not 6"),  # the usual five-field crontab
        ("0 0 24 * * *", "hour field '24' is outside 0-23"),
        ("0 61 2 * * *", "minute field '61' is outside 0-59"),
        ("0 0 2 0 * *", "day-of-month field '0' is outside 1-31"),
        ("0 0 2 * 13 *", "month field '13' is outside 1-12"),
        ("0 0 2 * * 7", "day-of-week field '7' is outside 0-6"),
        ("0 0 2 * * MON-XYZ", "day-of-week field 'MON-XYZ' is not valid"),
        ("? 0 2 * * *", "second field '?' is not valid"),
        ("0 */0 2 * * *", "minute field '*/0' is not valid"),
        ("0 0 5-2 * * *", "hour field '5-2' is outside 0-23"),
    ],
)
def test_bad_cron_is_one_line_and_nothing_is_sent(kfp_server, cron, complaint):
    result = CliRunner().invoke(
        main,
        ["schedule", "retrain_and_export", "--host", kfp_server.url, "--cron", cron, "-p", "base_path=/m"],
    )
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: ") and complaint in line and "six fields" in line
    assert kfp_server.requests == []


@pytest.mark.parametrize(
    "cron", ["0 0 2 * * *", "*/30 * * * * ?", "0 15 9 ? JAN-MAR MON-FRI", "0 0 0,12 1-15/2 * *"]
)
def test_valid_crons_are_accepted(kfp_server, cron):
    result = cli("schedule", "export_to_serving", "--host", kfp_server.url, "--cron", cron,
                 "-p", "source_uri=/m", "-p", "base_path=/b")  # fmt: skip
    assert result.exit_code == 0, result.output
    (recurring,) = kfp_server.posted("recurringruns")
    assert recurring["trigger"]["cron_schedule"]["cron"] == cron


@pytest.mark.parametrize(
    "args, complaint",
    [
        (["export_to_serving", "-p", "base_path=/b"], "missing parameter(s) source_uri"),
        (["export_to_serving", "-p", "source_uri=/m", "-p", "base_path=/b", "-p", "colour=red"], "colour"),
        (
            ["export_to_serving", "-p", "source_uri=/m", "-p", "base_path=/b", "-p", "version=two"],
            "version=two",
        ),
        (
            ["export_to_serving", "-p", "source_uri=/m", "-p", "base_path=/b", "-p", "force=maybe"],
            "force=maybe",
        ),
        (["export_to_serving", "-p", "source_uri"], "expected NAME=VALUE"),
        (["serve_model", "-p", "base_path=/b"], "artifact input(s) model"),
        (["no_such_pipeline"], "neither a committed pipeline"),
    ],
)
def test_bad_submissions_fail_before_anything_is_sent(kfp_server, args, complaint):
    result = CliRunner().invoke(main, ["submit", *args, "--host", kfp_server.url])
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert complaint in line
    assert kfp_server.requests == []


def test_an_api_error_is_one_line(kfp_server):
    healthy = kfp_server.answer
    kfp_server.answer = lambda method, path, *rest: (
        healthy(method, path, *rest)
        if path.endswith("/healthz")
        else (403, {"error": "forbidden", "code": 7})
    )
    result = CliRunner().invoke(
        main,
        [
            "submit",
            "export_to_serving",
            "--host",
            kfp_server.url,
            "-p",
            "source_uri=/m",
            "-p",
            "base_path=/b",
        ],
    )
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert "answered 403" in line and kfp_server.url in line


def test_an_unreachable_host_is_one_line(tmp_path, monkeypatch):
    import socket

    monkeypatch.setenv("HOME", str(tmp_path))
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    result = CliRunner().invoke(
        main, ["submit", "export_to_serving", "--host", url, "-p", "source_uri=/m", "-p", "base_path=/b"]
    )
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert "cannot reach the KFP API" in line
