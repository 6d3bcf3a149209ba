"""Retries where they are safe: which steps KFP retries, what their exit codes say, and a push killed
mid-way and run again (as KFP's retry does) publishing exactly one complete version."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import push_models
import pytest
import requests
import yaml
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from google.api_core import exceptions as gexc

from kfp_tfserving.components.common.errors import (
    ERROR_MARKER,
    EXIT_PERMANENT,
    EXIT_TRANSIENT,
    StorageError,
    TransientStorageError,
    find_error_line,
)
from kfp_tfserving.components.common.storage import gcs, http, s3, storage_for
from kfp_tfserving.components.push_to_serving.manifest import build_manifest
from kfp_tfserving.components.push_to_serving.versions import inspect_version, numeric_versions
from kfp_tfserving.pipelines.cli.compile import pipeline_yaml
from kfp_tfserving.pipelines.cli.local_run import without_retries

tiny_models = push_models.tiny_models  # session fixtures: tiny SavedModels
tiny_model = push_models.tiny_model


def _retry_policies(doc: dict) -> dict[str, dict]:
    """step function -> its task's retryPolicy ({} when none), over every DAG of a compiled pipeline"""
    executor_function = {
        label: ex["container"]["args"][-1] for label, ex in doc["deploymentSpec"]["executors"].items()
    }
    component_executor = {name: c.get("executorLabel") for name, c in doc["components"].items()}
    dags = [doc["root"]["dag"], *(c["dag"] for c in doc["components"].values() if "dag" in c)]
    found = {}
    for dag in dags:
        for task in dag["tasks"].values():
            label = component_executor.get(task["componentRef"]["name"])
            if label:
                found[executor_function[label]] = task.get("retryPolicy", {})
    return found


def test_load_and_push_retry_with_backoff_export_and_check_do_not():
    policies = _retry_policies(yaml.safe_load(pipeline_yaml("export_to_serving").read_text()))
    assert set(policies) == {"load_model", "export_savedmodel", "check_signatures", "push_to_serving"}
    for step in ("load_model", "push_to_serving"):
        assert policies[step]["maxRetryCount"] == 3
        assert policies[step]["backoffDuration"] == "30s" and policies[step]["backoffFactor"] == 2.0
        assert policies[step]["backoffMaxDuration"] == "600s"
    assert policies["export_savedmodel"] == {} and policies["check_signatures"] == {}
    retrain = _retry_policies(yaml.safe_load(pipeline_yaml("retrain_and_export").read_text()))
    assert retrain["push_to_serving"]["maxRetryCount"] == 3  # inside the serve_model sub-pipeline
    assert retrain["train_keras_example"] == {} and retrain["export_savedmodel"] == {}


def test_a_local_run_tries_each_step_once():
    from kfp import components

    text = pipeline_yaml("retrain_and_export").read_text()
    assert "retryPolicy" in text
    pipeline = components.load_component_from_text(without_retries(text))
    spec = pipeline.pipeline_spec
    dags = [spec.root.dag, *(c.dag for c in spec.components.values() if c.HasField("dag"))]
    assert not any(task.HasField("retry_policy") for dag in dags for task in dag.tasks.values())


# --- transient or permanent: the error type and the exit code ---


def _response(status: int) -> requests.Response:
    response = requests.Response()
    response.status_code, response.reason = status, "x"
    return response


@pytest.mark.parametrize(
    "error, transient",
    [
        (gcs._fail("gs://b/m", gexc.ServiceUnavailable("busy")), True),
        (gcs._fail("gs://b/m", gexc.TooManyRequests("slow down")), True),
        (gcs._fail("gs://b/m", gexc.RetryError("deadline", None)), True),
        (gcs._fail("gs://b/m", gexc.NotFound("gone")), False),
        (gcs._fail("gs://b/m", gexc.Forbidden("no")), False),
        (s3._fail("s3://b/m", ClientError({"Error": {"Code": "SlowDown"}}, "PutObject")), True),
        (s3._fail("s3://b/m", ClientError({"Error": {"Code": "503"}}, "GetObject")), True),
        (s3._fail("s3://b/m", EndpointConnectionError(endpoint_url="http://x")), True),
        (s3._fail("s3://b/m", ReadTimeoutError(endpoint_url="http://x")), True),
        (s3._fail("s3://b/m", ClientError({"Error": {"Code": "AccessDenied"}}, "GetObject")), False),
        (s3._fail("s3://b/m", ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject")), False),
        (http._status_error("https://h/m", _response(503)), True),
        (http._status_error("https://h/m", _response(429)), True),
        (http._status_error("https://h/m", _response(404)), False),
        (http._status_error("https://h/m", _response(403)), False),
        (http._status_error("https://h/m", _response(400)), False),
    ],
)
def test_storage_errors_say_whether_a_retry_can_help(error, transient):
    assert isinstance(error, StorageError)
    assert isinstance(error, TransientStorageError) is transient


LOAD_CHILD = """
import sys
from pathlib import Path
from kfp_tfserving.components.load_model.loader import run_load_step
run_load_step(sys.argv[1], Path(sys.argv[2]), {})
"""


def _load_step(source: str, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", LOAD_CHILD, source, str(out)], capture_output=True, text=True, timeout=300
    )


def test_load_step_exits_75_when_storage_is_unavailable_and_2_when_the_source_is_wrong(
    s3_server, tiny_model, tmp_path, monkeypatch
):
    for key, value in s3_server.env.items():  # the step must talk to the server the faults are injected in
        monkeypatch.setenv(key, value)
    bucket = s3_server.new_bucket()
    storage = storage_for(f"s3://{bucket}/m")
    for path in tiny_model.rglob("*"):
        if path.is_file():
            storage.upload_file(path, f"s3://{bucket}/m/{path.relative_to(tiny_model).as_posix()}")
    s3_server.inject_faults(200, status=503)  # more than botocore's own retries
    unavailable = _load_step(f"s3://{bucket}/m", tmp_path / "a")
    s3_server.inject_faults(0)
    assert unavailable.returncode == EXIT_TRANSIENT, unavailable.stderr
    assert "unavailable for now" in find_error_line(unavailable.stderr)
    missing = _load_step(f"s3://{bucket}/no-such-model", tmp_path / "b")
    assert missing.returncode == EXIT_PERMANENT, missing.stderr
    assert ERROR_MARKER in missing.stderr and "not found" in find_error_line(missing.stderr)
    loaded = _load_step(f"s3://{bucket}/m", tmp_path / "c")  # storage is back: the retry succeeds
    assert loaded.returncode == 0, loaded.stderr


# --- a push killed mid-way, then retried ---

# The push step's own entry point in its own process, as its pod runs it; prints "ready" when imported.
PUSH_CHILD = """
import sys
from pathlib import Path
from kfp_tfserving.components.push_to_serving.publisher import PushOptions, run_push_step
print("ready", flush=True)
sys.stdin.readline()
run_push_step(Path(sys.argv[1]), {}, {}, sys.argv[2], PushOptions())
"""


def _push_child(model: Path, base: str) -> subprocess.Popen:
    return push_models.start_waiting_child(PUSH_CHILD, str(model), base)


@pytest.fixture(scope="module")
def heavy_model(tiny_model, tmp_path_factory) -> Path:
    """The tiny model plus 48 MB of asset bytes, so that a push lasts long enough to be killed mid-way."""
    model = tmp_path_factory.mktemp("heavy") / "m"
    shutil.copytree(tiny_model, model)
    (model / "assets").mkdir(exist_ok=True)
    (model / "assets" / "blob.bin").write_bytes(os.urandom(48 * 2**20))
    return model


def _kill_then_retry(model: Path, base: str, delay: float) -> tuple[bool, subprocess.CompletedProcess]:
    """Kill a push after `delay` seconds, then run the step again to the end. (killed mid-way?, retry)"""
    child = _push_child(model, base)
    push_models.go(child)
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    killed = child.returncode == -signal.SIGKILL
    retry = _push_child(model, base)
    push_models.go(retry)
    out, err = retry.communicate(timeout=300)
    return killed, subprocess.CompletedProcess(retry.args, retry.returncode, out, err)


def _exactly_one_complete_version(base: str, model: Path) -> None:
    storage = storage_for(base)
    assert numeric_versions(storage, base) == [1]
    info = inspect_version(storage, base, 1, deep=True)
    assert info.verified, info.problems
    assert info.manifest.content_digest == build_manifest(model, {}).content_digest


def _push_seconds(model: Path, base: str) -> float:
    child = _push_child(model, base)
    start = time.monotonic()
    push_models.go(child)
    _, err = child.communicate(timeout=300)
    assert child.returncode == 0, err
    return time.monotonic() - start


def test_a_push_killed_mid_way_and_retried_publishes_exactly_one_complete_version(heavy_model, tmp_path):
    seconds = _push_seconds(heavy_model, str(tmp_path / "calibration" / "m"))
    kills_mid_way = 0
    for i, fraction in enumerate((0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9)):
        base = str(tmp_path / f"kill{i}" / "m")
        killed, retry = _kill_then_retry(heavy_model, base, seconds * fraction)
        assert retry.returncode == 0, retry.stderr
        _exactly_one_complete_version(base, heavy_model)
        # A kill after the version was promoted leaves it; the retry sees identical content and adds none.
        kills_mid_way += killed
        assert not [p for p in Path(base).iterdir() if not p.name.isdigit()]  # staging cleaned up
    assert kills_mid_way >= 3  # most kills did land before the push finished


def test_a_push_to_gcs_killed_mid_way_and_retried_publishes_exactly_one_complete_version(
    gcs_server, heavy_model
):
    seconds = _push_seconds(heavy_model, f"gs://{gcs_server.new_bucket()}/m")
    for fraction in (0.3, 0.7):
        base = f"gs://{gcs_server.new_bucket()}/m"
        killed, retry = _kill_then_retry(heavy_model, base, seconds * fraction)
        assert killed
        assert retry.returncode == 0, retry.stderr
        storage = storage_for(base)
        complete = [
            n
            for n in numeric_versions(storage, base)
            if inspect_version(storage, base, n, deep=True).verified
        ]
        assert len(complete) == 1, numeric_versions(storage, base)
