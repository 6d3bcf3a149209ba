"""The publish copy: kernel copies with the checksum following from the page cache, and their fallbacks."""

from __future__ import annotations

import base64
import errno
import os
import stat
import threading

import google_crc32c
import pytest

from kfp_tfserving.components.push_to_serving import copying


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
    # Several copy and hash rounds per file, so the hash really follows the copy chunk by chunk.
    monkeypatch.setattr(copying, "CHUNK", 1024 * 1024)
    monkeypatch.setattr(copying, "HASH_BUFFER", 300 * 1024)


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


def test_falls_back_to_sendfile_when_the_kernel_refuses_copy_file_range(tmp_path, monkeypatch, small_chunks):
    def refuse(*args, **kwargs):
        raise OSError(errno.EXDEV, "cross-device")

    monkeypatch.setattr(os, "copy_file_range", refuse)
    files = _tree(tmp_path / "src")
    assert copying.copy_tree_hashing(tmp_path / "src", tmp_path / "dst") == _expected(files)
    assert (tmp_path / "dst/variables/variables.data-00000-of-00001").read_bytes() == files[
        "variables/variables.data-00000-of-00001"
    ]


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
    def broken(*args, **kwargs):
        raise OSError(errno.EIO, "input/output error")

    monkeypatch.setattr(os, "copy_file_range", broken)
    _tree(tmp_path / "src")
    before = threading.active_count()
    with pytest.raises(OSError, match="input/output error"):
        copying.copy_tree_hashing(tmp_path / "src", tmp_path / "dst")
    assert threading.active_count() == before


def test_copy_file_hashing_returns_size_and_digest(tmp_path):
    data = os.urandom(5000)
    (tmp_path / "a").write_bytes(data)
    assert copying.copy_file_hashing(tmp_path / "a", tmp_path / "b") == (
        5000,
        _crc32c(data),
    )
    assert (tmp_path / "b").read_bytes() == data
