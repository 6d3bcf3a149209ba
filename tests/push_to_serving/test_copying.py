"""The publish copy: one read of every byte, checksummed on its way to the destination, and its fallbacks."""

from __future__ import annotations

import base64
import errno
import os
import stat
import threading

import google_crc32c
import pytest

from kfp_tfserving.components.common.errors import PublishError
from kfp_tfserving.components.push_to_serving import copying
from kfp_tfserving.components.push_to_serving.manifest import (
    MANIFEST_NAME,
    Manifest,
    build_manifest,
    verify_manifest,
)
from kfp_tfserving.components.push_to_serving.protocol_local import publish_local


def _tree(root):
    files = {
        "saved_model.pb": os.urandom(1000),
        "variables/variables.data-00000-of-00001": os.urandom(3 * 1024 * 1024 + 17),
        "variables/variables.index": b"",
        "assets/vocab.txt": b"a\nb\n",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def _crc32c(data: bytes) -> str:
    """Cloud Storage's encoding of a CRC32C, computed independently of the code under test."""
    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode()


def _expected(files):
    return {rel: {"size": len(data), "crc32c": _crc32c(data)} for rel, data in files.items()}


@pytest.fixture
def small_chunks(monkeypatch):
    # Many reads per file and several write slices per read, so the checksum really spans chunks.
    monkeypatch.setattr(copying, "READ_CHUNK", 300 * 1024)
    monkeypatch.setattr(copying, "WRITE_SLICE", 64 * 1024)


def test_copy_tree_hashes_what_it_wrote(tmp_path, small_chunks):
    files = _tree(tmp_path / "src")
    os.chmod(tmp_path / "src/saved_model.pb", 0o600)
    written = copying.copy_tree_hashing(
        tmp_path / "src", tmp_path / "dst", skip=frozenset({"assets/vocab.txt"})
    )
    expected = _expected(files)
    del expected["assets/vocab.txt"]
    assert written == expected
    for rel, data in files.items():
        assert (tmp_path / "dst" / rel).exists() == (rel != "assets/vocab.txt")
        if rel != "assets/vocab.txt":
            assert (tmp_path / "dst" / rel).read_bytes() == data
    assert stat.S_IMODE((tmp_path / "dst/saved_model.pb").stat().st_mode) == 0o600


def test_checksums_taken_while_copying_equal_the_manifest_of_a_separate_pass(tmp_path, small_chunks):
    _tree(tmp_path / "src")
    written = copying.copy_tree_hashing(tmp_path / "src", tmp_path / "dst")
    assert written == build_manifest(tmp_path / "src", {}).files
    assert written == build_manifest(tmp_path / "dst", {}).files


def test_short_writes_are_completed(tmp_path, monkeypatch, small_chunks):
    real_write = os.write

    def short_write(fd, data):
        return real_write(fd, bytes(data[:1000]))

    monkeypatch.setattr(copying.os, "write", short_write)
    files = _tree(tmp_path / "src")
    assert copying.copy_tree_hashing(tmp_path / "src", tmp_path / "dst") == _expected(files)
    big = "variables/variables.data-00000-of-00001"
    assert (tmp_path / "dst" / big).read_bytes() == files[big]


def test_a_reflinked_clone_is_checksummed_by_reading_it(tmp_path, monkeypatch):
    """Where FICLONE works no byte is copied; the clone is read once for its checksum."""

    def clone(dst_fd, request, src_fd):
        assert request == copying.FICLONE
        while data := os.read(src_fd, 65536):
            os.write(dst_fd, data)
        os.lseek(dst_fd, 0, os.SEEK_SET)

    monkeypatch.setattr(copying.fcntl, "ioctl", clone)
    files = _tree(tmp_path / "src")
    assert copying.copy_tree_hashing(tmp_path / "src", tmp_path / "dst") == _expected(files)


def test_reflink_refusal_is_remembered_and_the_copy_goes_on(tmp_path, monkeypatch):
    calls = []

    def no_clone(fd, request, arg):
        calls.append(request)
        raise OSError(errno.EOPNOTSUPP, "not supported")

    monkeypatch.setattr(copying.fcntl, "ioctl", no_clone)
    files = _tree(tmp_path / "src")
    assert copying.copy_tree_hashing(tmp_path / "src", tmp_path / "dst") == _expected(files)
    assert calls == [copying.FICLONE]  # asked once for the whole tree


def test_a_real_copy_error_is_raised_and_leaves_no_thread_behind(tmp_path, monkeypatch):
    real_write = os.write

    def broken(fd, data):
        if len(data) > 100_000:
            raise OSError(errno.EIO, "input/output error")
        return real_write(fd, data)

    monkeypatch.setattr(copying.os, "write", broken)
    _tree(tmp_path / "src")
    before = threading.active_count()
    with pytest.raises(OSError, match="input/output error"):
        copying.copy_tree_hashing(tmp_path / "src", tmp_path / "dst")
    assert threading.active_count() == before


def test_copy_file_hashing_returns_size_and_digest(tmp_path):
    data = os.urandom(5000)
    (tmp_path / "a").write_bytes(data)
    assert copying.copy_file_hashing(tmp_path / "a", tmp_path / "b") == (5000, _crc32c(data))
    assert (tmp_path / "b").read_bytes() == data


def test_a_copy_that_differs_from_the_manifest_publishes_nothing(tmp_path, monkeypatch):
    """With a manifest hashed beforehand (the push does when the content may repeat the newest version),
    bytes that change on their way to the staging directory fail the push: no version, no staging left."""
    _tree(tmp_path / "src")
    manifest = build_manifest(tmp_path / "src", {})
    real_read = os.read

    def flipping_read(fd, count):
        data = real_read(fd, count)
        return bytes([data[0] ^ 1]) + data[1:] if len(data) > 1_000_000 else data

    monkeypatch.setattr(copying.os, "read", flipping_read)
    base = tmp_path / "base"
    with pytest.raises(PublishError, match="does not match its manifest"):
        publish_local(tmp_path / "src", base, manifest, "auto", 0, {})
    assert sorted(p.name for p in base.iterdir()) == []


def test_a_published_copy_corrupted_later_fails_verification(tmp_path):
    files = _tree(tmp_path / "src")
    number, manifest = publish_local(tmp_path / "src", tmp_path / "base", None, "auto", 0, {})
    version = tmp_path / "base" / str(number)
    assert manifest.files == _expected(files)
    assert verify_manifest(version, Manifest.from_json((version / MANIFEST_NAME).read_text())) == []
    big = version / "variables/variables.data-00000-of-00001"
    data = bytearray(big.read_bytes())
    data[12345] ^= 0x10
    big.write_bytes(bytes(data))
    assert verify_manifest(version, manifest) == [
        "variables/variables.data-00000-of-00001: size or crc32c differs"
    ]
