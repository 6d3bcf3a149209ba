"""`submit --wait` and `runs` against the KFP API stand-in (tests/kfp_api_standin.py): following a run
step by step to its exit code, and listing our runs with the version each one published."""

from __future__ import annotations

import push_models
from click.testing import CliRunner
from kfp_api_standin import API

from kfp_tfserving.pipelines.cli import main


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


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
