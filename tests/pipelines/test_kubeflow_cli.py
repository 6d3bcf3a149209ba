"""`submit` and `schedule` against a fake KFP API server.

A real KFP API server cannot run on this machine (it needs a Kubernetes cluster), so these tests check the
HTTP boundary instead: a small server on 127.0.0.1 answers the v2beta1 REST endpoints kfp.Client calls and
records every request; the tests assert what was sent (method, path, body) and what was not.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import push_models
import pytest
import yaml
from click.testing import CliRunner

from kfp_tfserving.pipelines.cli import main
from kfp_tfserving.pipelines.cli.compile import pipeline_yaml

API = "/apis/v2beta1"


class FakeKfp:
    """Records requests; answers like KFP 2.x would for the calls kfp.Client makes here."""

    def __init__(self, existing_experiments: dict[str, str] | None = None):
        self.requests: list[dict] = []
        self.experiments = dict(existing_experiments or {})
        self.run_script: list[dict] = []  # what GET /runs/run-42 answers, one per poll; the last one repeats
        self.listed_runs: list[dict] = []  # what GET /runs answers

    def answer(self, method: str, path: str, query: dict, body: dict | None) -> tuple[int, dict]:
        if method == "GET" and path == f"{API}/healthz":
            return 200, {"multi_user": False}
        if method == "GET" and path == f"{API}/experiments":
            wanted = json.loads(query["filter"][0])["predicates"][0]["stringValue"]
            found = [
                {"experiment_id": i, "display_name": n} for n, i in self.experiments.items() if n == wanted
            ]
            return 200, {"experiments": found, "total_size": len(found)} if found else {}
        if method == "POST" and path == f"{API}/experiments":
            new_id = f"exp-{len(self.experiments) + 1}"
            self.experiments[body["display_name"]] = new_id
            return 200, {"experiment_id": new_id, "display_name": body["display_name"]}
        if method == "POST" and path == f"{API}/runs":
            return 200, {"run_id": "run-42", "display_name": body["display_name"], "state": "PENDING"}
        if method == "GET" and path == f"{API}/runs/run-42" and self.run_script:
            return 200, self.run_script.pop(0) if len(self.run_script) > 1 else self.run_script[0]
        if method == "GET" and path == f"{API}/runs":
            return 200, {"runs": self.listed_runs, "total_size": len(self.listed_runs)}
        if method == "POST" and path == f"{API}/recurringruns":
            return 200, {"recurring_run_id": "rr-7", "display_name": body["display_name"]}
        return 404, {"error": f"no route {method} {path}", "code": 5}


@pytest.fixture
def kfp_server(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/kfp/context.json from the developer's machine
    fake = FakeKfp(existing_experiments={"kfp-tfserving": "exp-existing"})

    class Handler(BaseHTTPRequestHandler):
        def _serve(self):
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            fake.requests.append(
                {"method": self.command, "path": url.path, "query": parse_qs(url.query), "body": body}
            )
            status, payload = fake.answer(self.command, url.path, parse_qs(url.query), body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()
    thread.join()


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _posted(fake: FakeKfp, path: str) -> list[dict]:
    return [r["body"] for r in fake.requests if r["method"] == "POST" and r["path"] == f"{API}/{path}"]


def test_submit_posts_the_committed_pipeline_with_typed_parameters(kfp_server):
    result = cli(
        "submit", "export_to_serving", "--host", kfp_server.url, "--run-name", "nightly",
        "-p", "source_uri=gs://models/emotion.h5", "-p", "base_path=/models/emotion",
        "-p", "parity_atol=0.001", "-p", "force=true", "-p", "inputs=a,b", "-p", "version=3",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (run,) = _posted(kfp_server, "runs")
    assert run["display_name"] == "nightly"
    assert run["experiment_id"] == "exp-existing"  # the existing experiment is found, not created again
    assert _posted(kfp_server, "experiments") == []
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
    (experiment,) = _posted(kfp_server, "experiments")
    assert experiment["display_name"] == "retraining"
    (run,) = _posted(kfp_server, "runs")
    assert run["experiment_id"] == kfp_server.experiments["retraining"]
    assert run["pipeline_spec"]["pipelineInfo"]["name"] == "retrain-and-export"


def test_submit_takes_a_yaml_path(kfp_server, tmp_path):
    copy = tmp_path / "mine.yaml"
    copy.write_text(pipeline_yaml("export_to_serving").read_text())
    result = cli("submit", str(copy), "--host", kfp_server.url, "-p", "source_uri=/m", "-p", "base_path=/b")
    assert result.exit_code == 0, result.output
    (run,) = _posted(kfp_server, "runs")
    assert run["display_name"].startswith("mine.yaml")


def test_schedule_posts_a_recurring_run_with_the_cron_and_one_at_a_time(kfp_server):
    result = cli(
        "schedule", "retrain_and_export", "--host", kfp_server.url, "--cron", "0 0 2 * * *",
        "-p", "base_path=/models/tiny", "-p", "epochs=5",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (recurring,) = _posted(kfp_server, "recurringruns")
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
    (recurring,) = _posted(kfp_server, "recurringruns")
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


# --- submit --wait and runs ---

STEPS = ("load-model", "export-savedmodel", "check-signatures", "push-to-serving")
E2S_ARGS = ("-p", "source_uri=/m", "-p", "base_path=/b")


def run_json(state: str, steps: dict[str, str], *, errors: dict[str, str] | None = None, **extra) -> dict:
    """A v2beta1 Run as the API answers it, with the backend's own root and driver task details."""
    details = [
        {"display_name": "root", "state": "RUNNING"},
        {"display_name": "root-driver", "state": "SUCCEEDED"},
    ]
    for i, (name, step_state) in enumerate(steps.items()):
        task = {"display_name": name, "state": step_state, "create_time": f"2026-01-01T02:00:0{i}Z"}
        if name in (errors or {}):
            task["error"] = {"code": 2, "message": errors[name]}
        details.append(task)
    return {
        "run_id": "run-42",
        "display_name": "nightly",
        "state": state,
        "pipeline_spec": {"pipelineInfo": {"name": "export-to-serving"}},
        "run_details": {"task_details": details},
        **extra,
    }


def _submit_and_wait(fake, *extra: str):
    return CliRunner().invoke(
        main,
        [
            "submit",
            "export_to_serving",
            "--host",
            fake.url,
            *E2S_ARGS,
            "--wait",
            "--poll-interval",
            "0.01",
            *extra,
        ],
    )


def test_wait_follows_each_step_and_exits_0_on_success(kfp_server):
    kfp_server.run_script = [
        run_json("PENDING", {}),
        run_json("RUNNING", {"load-model": "RUNNING"}),
        run_json("RUNNING", {"load-model": "SUCCEEDED", "export-savedmodel": "RUNNING"}),
        run_json("RUNNING", {"load-model": "SUCCEEDED", "export-savedmodel": "SUCCEEDED",
                             "check-signatures": "SUCCEEDED", "push-to-serving": "RUNNING"}),
        run_json("SUCCEEDED", dict.fromkeys(STEPS, "SUCCEEDED")),
    ]  # fmt: skip
    result = _submit_and_wait(kfp_server)
    assert result.exit_code == 0, result.output
    changes = [line.split(None, 1)[1] for line in result.output.splitlines() if line.strip()[:1].isdigit()]
    assert changes == [
        "run: PENDING",
        "load-model: RUNNING",
        "load-model: SUCCEEDED",
        "export-savedmodel: RUNNING",
        "export-savedmodel: SUCCEEDED",
        "check-signatures: SUCCEEDED",
        "push-to-serving: RUNNING",
        "push-to-serving: SUCCEEDED",
    ]  # each change once, in order; the backend's root and driver tasks are not steps
    assert result.output.strip().endswith("run run-42: SUCCEEDED")
    polls = [r for r in kfp_server.requests if r["method"] == "GET" and r["path"] == f"{API}/runs/run-42"]
    assert len(polls) == 5


def test_wait_names_the_failing_step_and_its_error_and_exits_1(kfp_server):
    reason = "/m/model.keras: not a Keras file; export it with model.save"
    kfp_server.run_script = [
        run_json("RUNNING", {"load-model": "SUCCEEDED", "export-savedmodel": "RUNNING"}),
        run_json(
            "FAILED",
            {"load-model": "SUCCEEDED", "export-savedmodel": "FAILED"},
            errors={"export-savedmodel": f"process exited: kfp-tfserving error: {reason}"},
            error={"code": 9, "message": "the run failed"},
        ),
    ]
    result = _submit_and_wait(kfp_server)
    assert result.exit_code == 1
    assert "export-savedmodel: FAILED" in result.output
    assert f"error: run run-42 FAILED: step export-savedmodel: {reason}" in result.output
    assert "push-to-serving" not in result.output


def test_wait_without_a_step_error_reports_the_runs_own(kfp_server):
    kfp_server.run_script = [
        run_json("CANCELED", {"load-model": "CANCELED"}, error={"message": "canceled by bob"})
    ]
    result = _submit_and_wait(kfp_server)
    assert result.exit_code == 1
    assert "error: run run-42 CANCELED: the run: canceled by bob" in result.output


def test_wait_gives_up_after_the_timeout_with_124(kfp_server):
    kfp_server.run_script = [run_json("RUNNING", {"load-model": "RUNNING"})]
    result = _submit_and_wait(kfp_server, "--timeout", "0.3")
    assert result.exit_code == 124
    assert "run-42 still RUNNING after 0.3s; it goes on on the cluster" in result.output
    assert result.output.count("load-model: RUNNING") == 1  # printed once, not at every poll


def test_submit_without_wait_does_not_follow_the_run(kfp_server):
    kfp_server.run_script = [run_json("RUNNING", {})]
    result = cli("submit", "export_to_serving", "--host", kfp_server.url, *E2S_ARGS)
    assert result.exit_code == 0
    assert not [r for r in kfp_server.requests if r["path"] == f"{API}/runs/run-42"]


def _publish_fake_version(base, number: int, run_id: str) -> None:
    from kfp_tfserving.components.push_to_serving.manifest import MANIFEST_NAME, Manifest

    version = base / str(number)
    version.mkdir(parents=True)
    (version / MANIFEST_NAME).write_text(Manifest({}, {"pipeline_run_id": run_id}, 0).to_json())


def test_runs_lists_our_runs_newest_first_with_the_version_each_published(kfp_server, tmp_path):
    import datetime as dt

    base = tmp_path / "serving" / "emotion"
    night = dt.datetime(2026, 1, 2, 2, 0, tzinfo=dt.UTC)
    _publish_fake_version(base, 1, "r1")
    _publish_fake_version(base, 2, "r2")
    _publish_fake_version(base, 3, "a-run-of-another-cluster")

    def listed(run_id, state, base_path, start, pipeline="export-to-serving"):
        return {
            "run_id": run_id, "display_name": f"nightly-{run_id}", "state": state,
            "pipeline_spec": {"pipelineInfo": {"name": pipeline}},
            "runtime_config": {"parameters": {"base_path": base_path}},
            "created_at": start.isoformat(), "finished_at": (start + dt.timedelta(minutes=5)).isoformat(),
        }  # fmt: skip

    kfp_server.listed_runs = [
        listed("r4", "SUCCEEDED", "/models/on-a-pvc", night + dt.timedelta(days=1)),
        listed("r3", "FAILED", str(base), night + dt.timedelta(hours=1)),
        listed("r9", "SUCCEEDED", str(base), night, pipeline="someone-elses-pipeline"),
        listed("r2", "SUCCEEDED", str(base), night),
        listed("r1", "SUCCEEDED", str(base), night - dt.timedelta(days=1)),
        listed("r0", "SUCCEEDED", str(base), night - dt.timedelta(days=2)),  # unchanged: published nothing
    ]
    result = cli("runs", "--host", kfp_server.url, "--limit", "6")
    assert result.exit_code == 0, result.output
    header, *rows = [line.split() for line in result.output.strip().splitlines()]
    assert header[:5] == ["created", "run", "pipeline", "state", "version"]
    assert [(r[2], r[4], r[5], r[6]) for r in rows] == [
        ("nightly-r4", "SUCCEEDED", "?", "r4"),  # its base path is not readable from here
        ("nightly-r3", "FAILED", "-", "r3"),
        ("nightly-r2", "SUCCEEDED", "2", "r2"),
        ("nightly-r1", "SUCCEEDED", "1", "r1"),
        ("nightly-r0", "SUCCEEDED", "-", "r0"),
    ]
    (listing,) = [r for r in kfp_server.requests if r["path"] == f"{API}/runs"]
    assert listing["query"]["sort_by"] == ["created_at desc"] and listing["query"]["page_size"] == ["6"]


tiny_models = push_models.tiny_models  # session fixtures: tiny SavedModels
tiny_model = push_models.tiny_model


def test_runs_finds_the_version_by_the_run_id_the_push_recorded(kfp_server, tmp_path, tiny_models):
    """The push step records its run's id in the version's manifest; `runs` reads it back."""
    from kfp_tfserving.components.push_to_serving.publisher import PushOptions, publish

    base = tmp_path / "m"
    assert publish(tiny_models[0], str(base), options=PushOptions(run_id="run-a")).version == 1
    assert publish(tiny_models[1], str(base), options=PushOptions(run_id="run-b")).version == 2
    kept = publish(tiny_models[1], str(base), options=PushOptions(run_id="run-c"))
    assert not kept.published  # the same model: version 2 kept, nothing recorded for run-c
    kfp_server.listed_runs = [
        {"run_id": run, "display_name": run, "state": "SUCCEEDED",
         "pipeline_spec": {"pipelineInfo": {"name": "export-to-serving"}},
         "runtime_config": {"parameters": {"base_path": str(base)}}}
        for run in ("run-c", "run-b", "run-a")
    ]  # fmt: skip
    result = cli("runs", "--host", kfp_server.url)
    assert result.exit_code == 0, result.output
    _, *rows = [line.split() for line in result.output.strip().splitlines()]
    assert [(r[0], r[3]) for r in rows] == [("run-c", "-"), ("run-b", "2"), ("run-a", "1")]


def test_runs_with_none_says_so(kfp_server):
    result = cli("runs", "--host", kfp_server.url)
    assert result.exit_code == 0 and result.output.strip() == "no runs"
