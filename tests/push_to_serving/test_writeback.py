"""The publish copy keeps its page cache to a window: chunks are written back and dropped as the copy goes,
measured with mincore on the real kernel; where the file system refuses, the copy goes on without it."""

from __future__ import annotations

import ctypes
import errno
import mmap
import os

import pytest

from kfp_tfserving.components.push_to_serving import copying, writeback

CHUNK = 2 * 1024 * 1024  # the page cache drops whole folios only, and written files have 2 MB ones
IN_FLIGHT = 3
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]


def resident_bytes(fd: int) -> int:
    """Bytes of the file in the page cache (mincore of a mapping nothing touches)."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0
    address = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    assert address not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
    try:
        pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        vector = (ctypes.c_ubyte * pages)()
        assert _libc.mincore(address, size, vector) == 0, os.strerror(ctypes.get_errno())
        return sum(byte & 1 for byte in vector) * mmap.PAGESIZE
    finally:
        _libc.munmap(address, size)


@pytest.fixture
def small_window(monkeypatch):
    monkeypatch.setattr(copying, "KERNEL_CHUNK", CHUNK)
    monkeypatch.setattr(writeback, "CHUNKS_IN_FLIGHT", IN_FLIGHT)


def _source(tmp_path, chunks: int = 24) -> tuple[bytes, object]:
    data = os.urandom(chunks * CHUNK + 123)
    src = tmp_path / "src" / "variables" / "variables.data-00000-of-00001"
    src.parent.mkdir(parents=True)
    with open(src, "wb") as f:  # on disk, as a model an earlier step wrote: dirty pages cannot be dropped
        f.write(data)
        os.fsync(f.fileno())
    return data, src


def test_the_copy_holds_a_window_of_the_page_cache_not_the_whole_file(tmp_path, small_window, monkeypatch):
    data, src = _source(tmp_path)
    with open(src, "rb") as f:  # the source starts cached, as a model the check step just read
        f.read()
    seen = []  # (destination bytes copied so far, destination bytes cached, source bytes cached)
    real = writeback.WritebackWindow.copied

    def watched(self, offset, count):
        real(self, offset, count)
        seen.append((offset + count, resident_bytes(self._dst), resident_bytes(self._src)))

    monkeypatch.setattr(writeback.WritebackWindow, "copied", watched)
    written = copying.copy_tree_hashing(tmp_path / "src", tmp_path / "dst")

    dst = tmp_path / "dst" / "variables" / "variables.data-00000-of-00001"
    assert written["variables/variables.data-00000-of-00001"]["size"] == len(data)
    window = (IN_FLIGHT + 1) * CHUNK
    assert len(seen) > 20
    assert max(cached for _, cached, _ in seen) <= window
    # The source is dropped behind the copy: of 24 chunks read, only the window (and readahead) is cached.
    assert min(cached for copied, _, cached in seen if copied > 20 * CHUNK) < 12 * CHUNK
    # Once on disk, nothing of either file stays cached.
    with open(dst, "rb") as d, open(src, "rb") as s:
        assert resident_bytes(d.fileno()) <= mmap.PAGESIZE * 2
        assert resident_bytes(s.fileno()) <= mmap.PAGESIZE * 2
    assert dst.read_bytes() == data  # read last: reading caches it


def test_without_the_window_the_whole_copy_stays_cached(tmp_path, small_window, monkeypatch):
    """The measurement above can fail: the same copy unwindowed leaves the whole destination cached."""
    data, src = _source(tmp_path)
    monkeypatch.setattr(writeback, "_sync_file_range", None)
    copying.copy_tree_hashing(tmp_path / "src", tmp_path / "dst")
    with open(tmp_path / "dst" / "variables" / "variables.data-00000-of-00001", "rb") as d:
        assert resident_bytes(d.fileno()) >= len(data) - CHUNK


@pytest.mark.parametrize("code", [errno.EINVAL, errno.ESPIPE, errno.EIO])
def test_a_file_system_refusing_sync_file_range_is_copied_unwindowed(
    tmp_path, small_window, monkeypatch, code
):
    data, _ = _source(tmp_path, chunks=8)
    calls = []

    def refusing(fd, offset, count, flags):
        calls.append(flags)
        ctypes.set_errno(code)
        return -1

    monkeypatch.setattr(writeback, "_sync_file_range", refusing)
    written = copying.copy_tree_hashing(tmp_path / "src", tmp_path / "dst")
    assert (tmp_path / "dst" / "variables" / "variables.data-00000-of-00001").read_bytes() == data
    assert written["variables/variables.data-00000-of-00001"]["size"] == len(data)
    assert calls == [writeback._WRITE]  # refused once, not asked again for that file


def test_the_window_waits_for_each_chunk_before_dropping_it(tmp_path, small_window, monkeypatch):
    """A chunk is dropped only after its writeback completed (dirty pages cannot be dropped), oldest first,
    with at most IN_FLIGHT chunks written back asynchronously."""
    _source(tmp_path, chunks=10)
    events = []
    real_range = writeback._sync_file_range
    real_drop = writeback._drop

    def recording_range(fd, offset, count, flags):
        events.append(("range", offset, flags))
        return real_range(fd, offset, count, flags)

    def recording_drop(fd, offset, count):
        events.append(("drop", offset, count))
        real_drop(fd, offset, count)

    monkeypatch.setattr(writeback, "_sync_file_range", recording_range)
    monkeypatch.setattr(writeback, "_drop", recording_drop)
    copying.copy_tree_hashing(tmp_path / "src", tmp_path / "dst")

    waited = [o for kind, o, f in events if kind == "range" and f & writeback._WAIT_AFTER]
    started = [o for kind, o, f in events if kind == "range" and f == writeback._WRITE]
    assert started == [i * CHUNK for i in range(11)]
    assert waited == [i * CHUNK for i in range(11 - IN_FLIGHT)]
    for offset in waited:  # each waited-for chunk is dropped (destination, then source) right after
        at = events.index(
            ("range", offset, writeback._WAIT_BEFORE | writeback._WRITE | writeback._WAIT_AFTER)
        )
        assert events[at + 1 : at + 3] == [("drop", offset, CHUNK), ("drop", offset, CHUNK)]


def test_a_source_not_yet_on_disk_is_left_to_the_kernel(tmp_path, small_window):
    """Dropping a dirty page writes it first: a source another step has just written is not dropped, so
    the push does not write it back (the destination's window is unchanged)."""
    data = os.urandom(12 * CHUNK)
    src = tmp_path / "src" / "variables.data-00000-of-00001"
    src.parent.mkdir()
    src.write_bytes(data)  # no fsync: dirty in the page cache
    with open(src, "rb") as s:
        before = writeback.cache_state(s.fileno())
        if before is None:
            pytest.skip("this kernel has no cachestat (Linux < 6.5): the window never drops the source")
        assert before.nr_dirty > 0
        copying.copy_tree_hashing(tmp_path / "src", tmp_path / "dst")
        after = writeback.cache_state(s.fileno())
        assert after.nr_cache * mmap.PAGESIZE >= len(data)  # still cached
        assert after.nr_dirty > 0  # and still the kernel's to write
    with open(tmp_path / "dst" / src.name, "rb") as d:
        assert resident_bytes(d.fileno()) <= mmap.PAGESIZE * 2
    assert (tmp_path / "dst" / src.name).read_bytes() == data


def test_the_window_drops_the_source_only_once_it_is_on_disk(tmp_path):
    src = tmp_path / "model.bin"
    src.write_bytes(os.urandom(CHUNK))
    fd = os.open(src, os.O_RDONLY)
    try:
        if writeback.cache_state(fd) is None:
            pytest.skip("this kernel has no cachestat (Linux < 6.5): the window never drops the source")
        dirty = writeback.WritebackWindow(fd, fd).drops_source
        os.fsync(fd)
        written = writeback.WritebackWindow(fd, fd).drops_source
    finally:
        os.close(fd)
    assert (dirty, written) == (False, True)
