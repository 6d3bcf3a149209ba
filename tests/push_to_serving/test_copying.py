"""The publish copy: the kernel copies, the checksum reads the destination back; and the fallbacks."""

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
    # Many chunks per file and several write slices per read, so the checksum really spans chunks.
    monkeypatch.setattr(copying, "KERNEL_CHUNK", 300 * 1024)
    monkeypatch.setattr(copying, "READ_CHUNK", 300 * 1024)
    monkeypatch.setattr(copying, "WRITE_SLICE", 64 * 1024)


@pytest.fixture
def kernel_copies(monkeypatch):
    """Counts the kernel's copies (the real copy_file_range)."""
    real, calls = os.copy_file_range, []

    def counting(*args):
        calls.append(args[2])
        return real(*args)

    monkeypatch.setattr(copying.os, "copy_file_range", counting)
    return calls


def test_copy_tree_hashes_what_it_wrote(tmp_path, small_chunks, kernel_copies):
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
    # The big file went through the kernel in several chunks; an empty file needs no copy at all.
    assert len(kernel_copies) > (3 * 1024 * 1024) // copying.KERNEL_CHUNK


def test_checksums_taken_while_copying_equal_the_manifest_of_a_separate_pass(tmp_path, small_chunks):
    _tree(tmp_path / "src")
    written = copying.copy_tree_hashing(tmp_path / "src", tmp_path / "dst")
    assert written == build_manifest(tmp_path / "src", {}).files
    assert written == build_manifest(tmp_path / "dst", {}).files


@pytest.mark.parametrize("code", [errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP])
def test_a_kernel_copy_refusal_falls_back_to_a_buffer_with_short_writes_completed(
    tmp_path, monkeypatch, small_chunks, code
):
    def refuse(*args):
        raise OSError(code, os.strerror(code))

    real_pwrite = os.pwrite

    def short_pwrite(fd, data, offset):
        return real_pwrite(fd, bytes(data[:1000]), offset)

    monkeypatch.setattr(copying.os, "copy_file_range", refuse)
    monkeypatch.setattr(copying.os, "pwrite", short_pwrite)
    files = _tree(tmp_path / "src")
    assert copying.copy_tree_hashing(tmp_path / "src", tmp_path / "dst") == _expected(files)
    big = "variables/variables.data-00000-of-00001"
    assert (tmp_path / "dst" / big).read_bytes() == files[big]


def test_a_kernel_copy_that_stops_early_is_finished_through_a_buffer(tmp_path, monkeypatch, small_chunks):
    """Some file systems copy part of a file, then report 0 bytes before its end: the rest is copied by
    read/write from where the kernel stopped."""
    real = os.copy_file_range

    def stops(src, dst, count, src_offset, dst_offset):
        return 0 if src_offset >= 1024 * 1024 else real(src, dst, count, src_offset, dst_offset)

    monkeypatch.setattr(copying.os, "copy_file_range", stops)
    files = _tree(tmp_path / "src")
    assert copying.copy_tree_hashing(tmp_path / "src", tmp_path / "dst") == _expected(files)


def test_without_copy_file_range_the_buffer_copy_is_used(tmp_path, monkeypatch):
    monkeypatch.delattr(copying.os, "copy_file_range")
    files = _tree(tmp_path / "src")
    assert copying.copy_tree_hashing(tmp_path / "src", tmp_path / "dst") == _expected(files)


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


def test_a_real_copy_error_is_raised_naming_the_file_and_leaves_no_thread_behind(
    tmp_path, monkeypatch, small_chunks
):
    real = os.copy_file_range

    def broken(src, dst, count, src_offset, dst_offset):
        if src_offset >= 1024 * 1024:
            raise OSError(errno.EIO, "Input/output error")
        return real(src, dst, count, src_offset, dst_offset)

    monkeypatch.setattr(copying.os, "copy_file_range", broken)
    _tree(tmp_path / "src")
    before = threading.active_count()
    with pytest.raises(OSError, match="Input/output error.*variables.data-00000-of-00001"):
        copying.copy_tree_hashing(tmp_path / "src", tmp_path / "dst")
    assert threading.active_count() == before


def test_a_read_back_error_fails_the_copy_naming_the_file(tmp_path, monkeypatch, small_chunks):
    """The checksum thread's errors reach the caller (after every fd is closed), with the file's name."""
    real = os.pread

    def failing(fd, count, offset):
        if offset >= 2 * 1024 * 1024 and os.fstat(fd).st_size > 1024 * 1024:
            raise OSError(errno.EIO, "Input/output error")
        return real(fd, count, offset)

    monkeypatch.setattr(copying.os, "pread", failing)
    _tree(tmp_path / "src")
    before = threading.active_count()
    with pytest.raises(OSError, match="variables/variables.data-00000-of-00001"):
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
    real = os.copy_file_range

    def flipping_copy(src, dst, count, src_offset, dst_offset):
        copied = real(src, dst, count, src_offset, dst_offset)
        if copied > 1_000_000:  # the copy lands with one bit changed
            byte = os.pread(dst, 1, dst_offset)
            os.pwrite(dst, bytes([byte[0] ^ 1]), dst_offset)
        return copied

    monkeypatch.setattr(copying.os, "copy_file_range", flipping_copy)
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


def test_a_copy_shorter_than_the_kernel_reported_fails_when_read_back(tmp_path, monkeypatch):
    """The read-back checks the length too: a destination missing bytes the kernel reported copied is an
    error naming the destination, not a checksum of fewer bytes."""
    real = os.copy_file_range

    def overstating(src, dst, count, src_offset, dst_offset):
        copied = real(src, dst, count, src_offset, dst_offset)
        return copied + 10 if copied else 0

    monkeypatch.setattr(copying.os, "copy_file_range", overstating)
    _tree(tmp_path / "src")
    with pytest.raises(OSError, match=r"the copy ends at byte \d+ of \d+ when read back.*dst/saved_model.pb"):
        copying.copy_tree_hashing(tmp_path / "src", tmp_path / "dst")
