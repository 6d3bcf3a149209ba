"""The gs:// and s3:// storage backends against loopback servers: the whole Storage interface."""

from __future__ import annotations

import pytest

from kfp_tfserving.components.common.errors import StorageError
from kfp_tfserving.components.common.storage import storage_for
from kfp_tfserving.components.common.storage.gcs import GCSStorage
from kfp_tfserving.components.common.storage.s3 import S3Storage


@pytest.fixture(params=["gcs_server", "s3_server"])
def store(request):
    """(server, storage, a fresh empty prefix URI) for each object store."""
    server = request.getfixturevalue(request.param)
    bucket = server.new_bucket()
    base = f"{server.scheme}://{bucket}/area"
    return server, storage_for(base), base


def test_registry_picks_the_backend_by_scheme():
    assert isinstance(storage_for("gs://b/k"), GCSStorage)
    assert isinstance(storage_for("s3://b/k"), S3Storage)
    with pytest.raises(StorageError, match="unsupported URI scheme 'ftp://'"):
        storage_for("ftp://host/x")


def test_files_listing_and_reading(store, tmp_path):
    _, storage, base = store
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "data.bin").write_bytes(b"\x00" * 1000)
    storage.upload_file(tmp_path / "v" / "data.bin", f"{base}/m/variables/data.bin")
    storage.write_bytes(f"{base}/m/saved_model.pb", b"proto")
    storage.write_bytes(f"{base}/mx/other", b"not under m/")

    assert storage.list_dir(base) == ["m", "mx"]
    assert storage.list_dir(f"{base}/m") == ["saved_model.pb", "variables"]
    assert storage.walk_files(f"{base}/m") == [("saved_model.pb", 5), ("variables/data.bin", 1000)]
    assert storage.total_size(f"{base}/m") == 1005
    assert storage.exists(f"{base}/m") and storage.exists(f"{base}/m/saved_model.pb")
    assert storage.is_dir(f"{base}/m/variables") and not storage.is_dir(f"{base}/m/saved_model.pb")
    assert not storage.exists(f"{base}/missing") and storage.list_dir(f"{base}/missing") == []
    assert storage.read_bytes(f"{base}/m/saved_model.pb") == b"proto"

    out = storage.download(f"{base}/m", tmp_path / "down")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "saved_model.pb",
        "variables/data.bin",
    ]
    assert (out / "variables" / "data.bin").read_bytes() == b"\x00" * 1000
    seen = []
    storage.download(f"{base}/m/saved_model.pb", tmp_path / "one.pb", progress=seen.append)
    assert (tmp_path / "one.pb").read_bytes() == b"proto" and sum(seen) == 5


def test_exclusive_create_refuses_a_taken_name(store, tmp_path):
    _, storage, base = store
    assert storage.write_bytes(f"{base}/claim", b"first", if_absent=True) is True
    assert storage.write_bytes(f"{base}/claim", b"second", if_absent=True) is False
    assert storage.read_bytes(f"{base}/claim") == b"first"
    local = tmp_path / "f"
    local.write_bytes(b"third")
    assert storage.upload_file(local, f"{base}/claim", if_absent=True) is False
    assert storage.read_bytes(f"{base}/claim") == b"first"
    # Without the condition a write replaces.
    assert storage.write_bytes(f"{base}/claim", b"fourth") is True
    assert storage.read_bytes(f"{base}/claim") == b"fourth"


def test_server_side_copy(store):
    _, storage, base = store
    storage.write_bytes(f"{base}/src", b"payload")
    assert storage.copy(f"{base}/src", f"{base}/dst", if_absent=True) is True
    assert storage.read_bytes(f"{base}/dst") == b"payload"
    storage.write_bytes(f"{base}/src2", b"other")
    assert storage.copy(f"{base}/src2", f"{base}/dst", if_absent=True) is False
    assert storage.read_bytes(f"{base}/dst") == b"payload"


def test_delete_tree_removes_only_the_prefix(store):
    _, storage, base = store
    for name in ("a/1", "a/2/3", "ab/keep"):
        storage.write_bytes(f"{base}/{name}", b"x")
    storage.delete_tree(f"{base}/a")
    assert storage.list_dir(base) == ["ab"]
    storage.delete_tree(f"{base}/nothing-here")  # missing is fine


def test_missing_objects_and_bad_uris_are_one_line_errors(store):
    server, storage, base = store
    with pytest.raises(StorageError, match=r"not found"):
        storage.read_bytes(f"{base}/nope")
    with pytest.raises(StorageError, match="no such object or prefix"):
        storage.download(f"{base}/nope", __import__("pathlib").Path("/tmp/never-written"))
    with pytest.raises(StorageError, match="not found"):
        storage.read_bytes(f"{server.scheme}://no-such-bucket-{id(store)}/x")
    with pytest.raises(StorageError, match=rf"not a(n)? {server.scheme}://bucket/path URI"):
        storage.read_bytes(f"{server.scheme}:///x")


def test_transient_server_errors_are_retried(store):
    server, storage, base = store
    server.inject_faults(2, status=503)
    assert storage.write_bytes(f"{base}/after-faults", b"ok") is True
    assert server.faults_remaining() == 0  # both faults were really answered, then retried past
    server.inject_faults(2, status=503, methods=("GET",))
    assert storage.read_bytes(f"{base}/after-faults") == b"ok"
    assert server.faults_remaining() == 0


def test_credentials_never_appear_in_errors(s3_server, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value")
    storage = S3Storage()
    with pytest.raises(StorageError) as err:
        storage.read_bytes(f"s3://missing-bucket-{id(storage)}/k")
    assert "very-secret-value" not in str(err.value)


def test_upload_files_sends_many_files_and_multipart_parts(store, tmp_path, monkeypatch):
    from boto3.s3.transfer import TransferConfig

    from kfp_tfserving.components.common.storage import s3

    # Small parts, so the large file really goes up as a multipart upload with per-part checksums.
    monkeypatch.setattr(
        s3, "_TRANSFER", TransferConfig(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20)
    )
    _, storage, base = store
    payloads = {f"f{i}.bin": bytes([i]) * (1000 * i) for i in range(1, 6)}
    payloads["big.bin"] = bytes(range(256)) * (11 * 2**20 // 256)
    for name, data in payloads.items():
        (tmp_path / name).write_bytes(data)
    storage.upload_files([(tmp_path / name, f"{base}/u/{name}") for name in payloads], workers=3)
    assert storage.walk_files(f"{base}/u") == sorted((name, len(data)) for name, data in payloads.items())
    for name, data in payloads.items():
        assert storage.read_bytes(f"{base}/u/{name}") == data
    storage.upload_files([])  # nothing to send is not an error


def test_upload_files_reports_a_missing_bucket_in_one_line(store, tmp_path):
    server, storage, _ = store
    (tmp_path / "a").write_bytes(b"x")
    with pytest.raises(StorageError, match="not found|failed"):
        storage.upload_files([(tmp_path / "a", f"{server.scheme}://no-such-bucket-{id(tmp_path)}/a")])


def test_gcs_upload_chunks_stay_within_the_memory_budget():
    from kfp_tfserving.components.common.storage import gcs

    low, high = gcs._CHUNK_LIMITS
    for sizes, workers in [([2**30], 8), ([2**30] * 3, 8), ([2**30] * 20, 8), ([2**30] * 20, 2), ([10], 8)]:
        chunk = gcs.upload_chunk_size(sizes, workers)
        in_flight = min(workers, sum(1 for s in sizes if s > gcs._SINGLE_REQUEST))
        assert chunk % gcs._CHUNK_ALIGN == 0 and low <= chunk <= high
        assert chunk * max(1, in_flight) <= max(gcs._UPLOAD_MEMORY, low * in_flight)
    # One large file gets the largest chunk: fewer round trips, still one budget.
    assert gcs.upload_chunk_size([2**30, 100], 8) == high


def test_gcs_upload_of_a_file_larger_than_a_chunk(gcs_server, tmp_path, monkeypatch):
    from kfp_tfserving.components.common.storage import gcs

    monkeypatch.setattr(gcs, "_CHUNK_LIMITS", (gcs._CHUNK_ALIGN, gcs._CHUNK_ALIGN))
    data = bytes(range(256)) * (9 * 2**20 // 256 + 7)  # over the client's single-request size: chunked
    (tmp_path / "big.bin").write_bytes(data)
    base = f"gs://{gcs_server.new_bucket()}/c"
    storage_for(base).upload_files([(tmp_path / "big.bin", f"{base}/big.bin")])
    assert storage_for(base).read_bytes(f"{base}/big.bin") == data


def test_s3_server_side_copy_is_one_request_below_five_gigabytes(s3_server, tmp_path, monkeypatch):
    import boto3
    from boto3.s3.transfer import TransferConfig

    from kfp_tfserving.components.common.storage import s3

    monkeypatch.setattr(
        s3, "_TRANSFER", TransferConfig(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20)
    )
    bucket = s3_server.new_bucket()
    data = bytes(range(256)) * (11 * 2**20 // 256)
    (tmp_path / "big.bin").write_bytes(data)
    storage = storage_for(f"s3://{bucket}/x")
    storage.upload_file(tmp_path / "big.bin", f"s3://{bucket}/x/src")
    assert storage.copy(f"s3://{bucket}/x/src", f"s3://{bucket}/x/dst", if_absent=True)
    etags = {k: boto3.client("s3").head_object(Bucket=bucket, Key=f"x/{k}")["ETag"] for k in ("src", "dst")}
    assert "-" in etags["src"]  # the upload went up in parts
    assert "-" not in etags["dst"]  # the copy did not: one CopyObject, done by the store
    assert storage.read_bytes(f"s3://{bucket}/x/dst") == data
