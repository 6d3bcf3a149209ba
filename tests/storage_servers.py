"""Loopback GCS and S3 servers for tests, started and stopped by session fixtures.

`gcs_server` runs gcp-storage-emulator (with GCS's generation preconditions enforced: see
storage_launcher.py) and `s3_server` runs moto's server, each in a subprocess on a free port of 127.0.0.1.
While a fixture is active, the environment points the standard clients at it (`STORAGE_EMULATOR_HOST`,
`AWS_ENDPOINT_URL_S3` and dummy AWS credentials), so `storage_for("gs://...")` and subprocesses just work.

    def test_something(gcs_server):
        bucket = gcs_server.new_bucket()          # a fresh, empty bucket name
        uri = f"gs://{bucket}/models/x"
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

LAUNCHER = Path(__file__).with_name("storage_launcher.py")


@dataclass
class ObjectStoreServer:
    scheme: str  # "gs" or "s3"
    endpoint: str  # http://127.0.0.1:<port>
    env: dict[str, str] = field(default_factory=dict)  # what the clients need to talk to it

    def new_bucket(self) -> str:
        """Create a bucket with a fresh name and return the name."""
        name = f"test-{uuid.uuid4().hex[:12]}"
        if self.scheme == "gs":
            from google.cloud import storage

            storage.Client(project="test").create_bucket(name)
        else:
            import boto3

            boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=name)
        return name

    def inject_faults(self, count: int, status: int = 503, methods: tuple[str, ...] = ()) -> None:
        """Make the next `count` requests (of these HTTP methods, or any) fail with `status`."""
        body = json.dumps({"count": count, "status": status, "methods": list(methods)}).encode()
        request = urllib.request.Request(f"{self.endpoint}/_kfp_faults", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def faults_remaining(self) -> int:
        with urllib.request.urlopen(f"{self.endpoint}/_kfp_faults", timeout=10) as response:
            return int(json.loads(response.read())["remaining"])


def _start(kind: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, str(LAUNCHER), kind],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("PORT "):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the {kind} test server did not start (said {line!r})")
    return proc, int(line.split()[1])


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _serve(kind: str, scheme: str, env_for) -> Iterator[ObjectStoreServer]:
    proc, port = _start(kind)
    endpoint = f"http://127.0.0.1:{port}"
    env = env_for(endpoint)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield ObjectStoreServer(scheme, endpoint, env)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _stop(proc)


_CLIENT_ENV = {
    "gcs": ("gs", lambda endpoint: {"STORAGE_EMULATOR_HOST": endpoint, "GOOGLE_CLOUD_PROJECT": "test"}),
    "s3": (
        "s3",
        lambda endpoint: {
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
    ),
}


@contextlib.contextmanager
def serve_object_store(kind: str) -> Iterator[ObjectStoreServer]:
    """The servers the fixtures use, for scripts too (the benchmarks): kind is "gcs" or "s3"."""
    yield from _serve(kind, *_CLIENT_ENV[kind])


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[ObjectStoreServer]:
    with serve_object_store("gcs") as server:
        yield server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[ObjectStoreServer]:
    with serve_object_store("s3") as server:
        yield server
