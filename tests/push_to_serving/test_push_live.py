"""--serving-url: live verification against a TF Serving REST API, and rollback when it fails.

Runs against the real `tensorflow_model_server` when it is on PATH, otherwise against the stand-in in
tests/tf_serving_standin.py (which implements the same documented endpoints).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time

import numpy as np
import push_models
import pytest
import requests
from conftest import published_versions
from tf_serving_standin import StandInTFServing

from kfp_tfserving.components.common.errors import PublishError
from kfp_tfserving.components.push_to_serving.live_server import compare
from kfp_tfserving.components.push_to_serving.publisher import PushOptions, publish

tiny_models = push_models.tiny_models  # session fixtures: tiny SavedModels
tiny_model = push_models.tiny_model


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _real_server(name, base):
    port = _free_port()
    proc = subprocess.Popen(
        [
            "tensorflow_model_server",
            f"--rest_api_port={port}",
            f"--port={_free_port()}",
            f"--model_name={name}",
            f"--model_base_path={base}",
            "--file_system_poll_wait_seconds=1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            with contextlib.suppress(requests.RequestException):
                requests.get(f"{url}/v1/models/{name}", timeout=1)
                break
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def serving():
    """serving(name, base) -> a context manager yielding the REST URL of a server watching `base`."""

    @contextlib.contextmanager
    def start(name, base):
        base.mkdir(parents=True, exist_ok=True)
        if shutil.which("tensorflow_model_server"):
            with _real_server(name, base) as url:
                yield url
        else:
            with StandInTFServing(name, base) as server:
                yield server.url

    return start


def test_live_verification_passes_and_then_labels(tmp_path, tiny_models, serving):
    base = tmp_path / "serving" / "tiny"
    config = tmp_path / "models.config"
    with serving("tiny", base) as url:
        first = publish(tiny_models[0], str(base), options=PushOptions(serving_url=url, serving_timeout=60))
        result = publish(
            tiny_models[1],
            str(base),
            options=PushOptions(
                serving_url=url, serving_timeout=60, models_config=str(config), label="canary"
            ),
        )
        status = requests.get(f"{url}/v1/models/tiny/versions/{result.version}", timeout=10).json()
    assert first.version == 1 and result.version == 2
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    assert result.labels == {"canary": 2}
    assert published_versions(base) == [1, 2]


def test_failed_verification_removes_the_version_and_restores_the_config(tmp_path, tiny_models, serving):
    base = tmp_path / "serving" / "tiny"
    config = tmp_path / "models.config"
    publish(tiny_models[0], str(base), options=PushOptions(models_config=str(config), label="stable"))
    config_before = config.read_text()
    # The server watches another model name: the new version never becomes AVAILABLE there.
    with (
        serving("other", tmp_path / "serving" / "other") as url,
        pytest.raises(PublishError, match="version 2 not AVAILABLE after 2s"),
    ):
        publish(
            tiny_models[1],
            str(base),
            options=PushOptions(
                serving_url=url, serving_timeout=2, models_config=str(config), label="canary"
            ),
        )
    assert published_versions(base) == [1]  # TF Serving keeps serving version 1
    assert config.read_text() == config_before


def test_unreachable_server_fails_the_push_and_removes_the_version(tmp_path, tiny_models):
    base = tmp_path / "tiny"
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    with pytest.raises(PublishError, match="cannot reach"):
        publish(tiny_models[0], str(base), options=PushOptions(serving_url=url, serving_timeout=1))
    assert published_versions(base) == []


def test_standin_serves_the_newest_version_and_ignores_staging(tmp_path, tiny_models):
    base = tmp_path / "tiny"
    base.mkdir()
    shutil.copytree(tiny_models[0], base / ".staging-x")  # not a version
    shutil.copytree(tiny_models[0], base / "1")
    with StandInTFServing("tiny", base) as server:
        publish(tiny_models[1], str(base), options=PushOptions(serving_url=server.url, serving_timeout=60))
        answer = requests.post(
            f"{server.url}/v1/models/tiny:predict", json={"instances": [[1.0, 1.0]]}
        ).json()
        assert sorted(server.loaded) == [2]
    # tiny_models[1] computes y = 3*x0 + 1*x1 (scale 3), so the newest version answered.
    assert answer["predictions"] == [[4.0]]


def test_compare_reports_differences():
    expected = {"y": np.array([[1.0], [2.0]], dtype=np.float32)}
    assert compare({"y": np.array([[1.0], [2.0]])}, expected, 1e-6, 1e-6) == []
    assert compare(np.array([[1.0], [2.0]]), expected, 1e-6, 1e-6) == []  # unnamed single output
    assert compare({"y": np.array([[1.0], [2.5]])}, expected, 1e-6, 1e-6) == [
        "output 'y' differs from the exported model's"
    ]
    assert compare({"z": np.array([1.0])}, expected, 1e-6, 1e-6) == ["output 'y' missing from the answer"]
    assert compare({"y": np.array([1.0, 2.0])}, expected, 1e-6, 1e-6) != []  # shape differs
