"""Remote sources: http(s) from a loopback server, gs:// through the GCS emulator, s3:// through moto."""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import published_versions, run_cli_json
from loopback_http import LoopbackServer, QuietHandler

from kfp_tfserving.components.common.errors import StorageError
from kfp_tfserving.components.common.saved_model.proto import read_signatures
from kfp_tfserving.components.common.storage import storage_for
from kfp_tfserving.components.load_model.loader import load_source


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


@dataclass
class Served:
    """What the loopback server holds, how it misbehaves, and what it was asked."""

    port: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    failures: int = 0  # the next n requests under /flaky/ get 503
    drops: int = 0  # the next n full GETs under /dropping/ send half the body, then hang up
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"


class _Handler(QuietHandler):
    served: Served

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _status(self, code: int) -> None:
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _serve(self, head: bool) -> None:
        served = self.served
        wanted = self.headers.get("Range")
        served.requests.append((self.command, self.path, wanted))
        mode, _, name = urlsplit(self.path).path.lstrip("/").partition("/")
        if mode == "nohead" and head:
            return self._status(405)
        if mode == "presigned" and head:  # signed for GET only, as presigned S3/GCS URLs are
            return self._status(403)
        if mode == "forbidden":
            return self._status(403)
        if mode == "flaky" and served.failures > 0:
            served.failures -= 1
            return self._status(503)
        data = served.files.get(name)
        if data is None:
            return self._status(404)
        start = int(wanted.split("=")[1].rstrip("-")) if wanted and mode == "dropping" else 0
        body = data[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if head:
            return
        if mode == "dropping" and served.drops > 0 and not start:
            served.drops -= 1
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture()
def http_server() -> Iterator[Served]:
    served = Served()
    handler = type("Handler", (_Handler,), {"served": served})
    with LoopbackServer(handler) as server, pytest.MonkeyPatch.context() as mp:
        served.port = server.port
        mp.setenv("NO_PROXY", "127.0.0.1")  # loopback only, whatever proxy the machine has
        yield served


@pytest.fixture(scope="module")
def saved_model_tgz(tmp_path_factory, tf2_saved_model) -> Path:
    archive = tmp_path_factory.mktemp("tgz") / "linear.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tf2_saved_model, "linear")
    return archive


def test_http_archive_is_downloaded_unpacked_and_hashed(
    tmp_path, http_server, saved_model_tgz, tf2_saved_model
):
    http_server.files["linear.tar.gz"] = saved_model_tgz.read_bytes()
    url = http_server.url("models/linear.tar.gz")
    artifact, metadata = tmp_path / "artifact", {}
    assert load_source(url, artifact, metadata) == "saved_model"
    assert tree(artifact / metadata["entry"]) == tree(tf2_saved_model)
    assert metadata["source_uri"] == url and metadata["archive"] == "linear.tar.gz"
    assert metadata["source_sha256"] == sha256(saved_model_tgz)
    assert metadata["source_bytes"] == saved_model_tgz.stat().st_size
    assert not list(artifact.rglob("*.tar.gz"))


def test_http_url_with_a_query_and_no_suffix_is_recognised_by_content(tmp_path, http_server, saved_model_tgz):
    # TF Hub style: .../1?tf-hub-format=compressed serves a .tar.gz under a bare name.
    http_server.files["1"] = saved_model_tgz.read_bytes()
    metadata: dict = {}
    assert load_source(http_server.url("nohead/1?tf-hub-format=compressed"), tmp_path / "a", metadata) == (
        "saved_model"
    )
    assert metadata["archive"] == "1" and metadata["archive_format"] == "tar.gz"
    assert metadata["entry"] == "1/linear"


def test_http_plain_model_file_from_a_url_signed_for_get_only(tmp_path, http_server, keras_two_io):
    http_server.files["two_io.keras"] = keras_two_io.read_bytes()
    metadata: dict = {}
    url = http_server.url("presigned/two_io.keras?X-Amz-Signature=0123")
    assert load_source(url, tmp_path / "a", metadata) == "keras"
    assert metadata["entry"] == "two_io.keras" and metadata["archive"] == ""
    assert sha256(tmp_path / "a" / "two_io.keras") == sha256(keras_two_io)


def test_http_404_and_403_are_clear_errors(tmp_path, http_server):
    missing = http_server.url("models/missing.tar.gz")
    with pytest.raises(StorageError) as err:
        load_source(missing, tmp_path / "a", {})
    assert str(err.value).startswith(f"{missing}: not found") and "check the model's URI" in str(err.value)
    denied = http_server.url("forbidden/x.tar.gz")
    with pytest.raises(StorageError, match=r"access denied \(HTTP 403 Forbidden\)"):
        load_source(denied, tmp_path / "b", {})
    assert list((tmp_path / "a").iterdir()) == [] and list((tmp_path / "b").iterdir()) == []


def test_http_retries_server_errors(tmp_path, http_server, keras_two_io):
    http_server.files["two_io.keras"] = keras_two_io.read_bytes()
    http_server.failures = 2
    metadata: dict = {}
    assert load_source(http_server.url("flaky/two_io.keras"), tmp_path / "a", metadata) == "keras"
    assert http_server.failures == 0
    assert metadata["source_sha256"] == sha256(keras_two_io)


def test_http_download_resumes_after_a_dropped_connection(tmp_path, http_server):
    data = os.urandom(3 * 1024 * 1024 + 17)
    http_server.files["weights.bin"] = data
    http_server.drops = 1
    dest = storage_for("http://x/").download(http_server.url("dropping/weights.bin"), tmp_path / "w.bin")
    assert dest.read_bytes() == data
    ranges = [r for method, _, r in http_server.requests if method == "GET"]
    assert ranges[0] is None and ranges[1] is not None and ranges[1] != "bytes=0-"


def test_http_is_read_only(tmp_path, http_server):
    storage = storage_for(http_server.url("x"))
    local = tmp_path / "f"
    local.write_bytes(b"1")
    for attempt in (
        lambda: storage.upload_file(local, http_server.url("x")),
        lambda: storage.write_bytes(http_server.url("x"), b"1"),
        lambda: storage.delete_tree(http_server.url("x")),
    ):
        with pytest.raises(StorageError, match="http\\(s\\) sources are read-only"):
            attempt()
    assert [m for m, _, _ in http_server.requests] == []


def test_connection_refused_is_a_clear_error(tmp_path, http_server, monkeypatch):
    monkeypatch.setenv("KFP_TFSERVING_HTTP_RETRIES", "0")  # no backoff waits for a port nobody listens on
    url = http_server.url("x.tar.gz").replace(str(http_server.port), "9")  # discard port: nothing listens
    with pytest.raises(StorageError, match=r"cannot connect"):
        load_source(url, tmp_path / "a", {})


def _upload_tree(uri: str, root: Path) -> None:
    storage = storage_for(uri)
    for p in sorted(root.rglob("*")):
        if p.is_file():
            storage.upload_file(p, f"{uri}/{p.relative_to(root).as_posix()}")


def test_gs_archive_and_directory_through_the_emulator(
    tmp_path, gcs_server, saved_model_tgz, tf2_saved_model
):
    bucket = gcs_server.new_bucket()
    storage_for(f"gs://{bucket}/x").upload_file(saved_model_tgz, f"gs://{bucket}/archives/linear.tar.gz")
    metadata: dict = {}
    assert load_source(f"gs://{bucket}/archives/linear.tar.gz", tmp_path / "a", metadata) == "saved_model"
    assert tree(tmp_path / "a" / metadata["entry"]) == tree(tf2_saved_model)
    assert metadata["source_sha256"] == sha256(saved_model_tgz)
    _upload_tree(f"gs://{bucket}/models/linear", tf2_saved_model)
    metadata = {}
    assert load_source(f"gs://{bucket}/models/linear", tmp_path / "b", metadata) == "saved_model"
    assert metadata["entry"] == "linear" and tree(tmp_path / "b" / "linear") == tree(tf2_saved_model)
    with pytest.raises(StorageError, match=rf"gs://{bucket}/models/nothing: not found"):
        load_source(f"gs://{bucket}/models/nothing", tmp_path / "c", {})


def test_s3_archive_through_moto_with_an_endpoint_override(tmp_path, s3_server, keras_two_io):
    assert os.environ["AWS_ENDPOINT_URL_S3"].startswith("http://127.0.0.1:")
    bucket = s3_server.new_bucket()
    archive = tmp_path / "scorer.zip"
    import zipfile

    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(keras_two_io, "scorer/two_io.keras")
    storage_for("s3://b/x").upload_file(archive, f"s3://{bucket}/zips/scorer.zip")
    metadata: dict = {}
    assert load_source(f"s3://{bucket}/zips/scorer.zip", tmp_path / "a", metadata) == "keras"
    assert metadata["archive"] == "scorer.zip" and metadata["source_sha256"] == sha256(archive)
    assert sha256(tmp_path / "a" / metadata["entry"]) == sha256(keras_two_io)


@pytest.mark.slow
def test_cli_publishes_a_saved_model_tar_gz_served_over_http(tmp_path, http_server, saved_model_tgz):
    http_server.files["linear.tar.gz"] = saved_model_tgz.read_bytes()
    base = tmp_path / "serving" / "linear"
    result = run_cli_json("run", http_server.url("models/linear.tar.gz"), "--base-path", str(base))
    assert result["version"] == 1 and published_versions(base) == [1]
    assert result["signature"]["inputs"]["x"]["shape"] == [-1, 4]
    assert set(read_signatures(base / "1")) == {"serving_default", "embed"}
    assert any(m == "GET" and p == "/models/linear.tar.gz" for m, p, _ in http_server.requests)
