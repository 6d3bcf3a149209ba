"""Copy a tree the way `cp -r && sync` does, each file's CRC32C (manifest.py) read back from the destination.

Each file is

- copied by the kernel (`copy_file_range`, as `cp` does), so no byte passes through Python; or, where the
  kernel refuses that (another file system on an old kernel, some FUSE and network mounts), read and
  written through one buffer; or cloned (FICLONE reflink, where the file system shares blocks);
- read back chunk by chunk right after each chunk is copied, from the page cache where the copy just put it,
  into its CRC32C: the manifest describes the destination's bytes, and the model is read once;
- written back and dropped from the page cache as the copy goes (writeback.py), so the disk writes while the
  source is read and a push holds a few chunks of cache instead of two copies of the model;
- made durable (`fsync`) on another thread while the next file is copied.

What this does not prove: that the disk kept the bytes (the read-back comes from the page cache);
`kfp-tfserving versions BASE` reads each local version back against its manifest. Measurements, and the
designs they ruled out: benchmarks/README.md (fifth and eighth rounds).
Memory stays flat: one chunk of read-back buffer, whatever the model's size.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

from kfp_tfserving.components.push_to_serving.manifest import CHECKSUM, Crc32c
from kfp_tfserving.components.push_to_serving.writeback import WritebackWindow

KERNEL_CHUNK = 8 * 1024 * 1024  # per copy_file_range call, and per read-back into the checksum
READ_CHUNK = 1024 * 1024  # per read() of the fallback copy
# per write() of the fallback copy: larger writes were slower here (benchmarks/README.md, sixth round)
WRITE_SLICE = 256 * 1024
FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)
_NO_REFLINK = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EPERM}
# copy_file_range's refusals of a pair of files it cannot copy (nothing is copied): copy through a buffer.
_NO_KERNEL_COPY = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM, errno.EBADF}


def _buffer_copy(src_fd: int, dst_fd: int, offset: int) -> Iterator[tuple[int, int]]:
    while data := os.pread(src_fd, READ_CHUNK, offset):
        start, view = offset, memoryview(data)
        while view:
            written = os.pwrite(dst_fd, view[:WRITE_SLICE], offset)
            view, offset = view[written:], offset + written
        yield start, offset - start


def copy_chunks(src_fd: int, dst_fd: int) -> Iterator[tuple[int, int]]:
    """Copy src to dst from offset 0 to the source's end, yielding each (offset, count) once it is copied."""
    kernel_copy = getattr(os, "copy_file_range", None)
    with contextlib.suppress(OSError, AttributeError):
        os.posix_fadvise(src_fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    offset = 0
    while kernel_copy is not None:
        try:
            count = kernel_copy(src_fd, dst_fd, KERNEL_CHUNK, offset, offset)
        except OSError as err:
            if err.errno not in _NO_KERNEL_COPY:
                raise
            break
        if count == 0:
            if offset >= os.fstat(src_fd).st_size:
                return
            break  # the file system copied nothing before the end (some pseudo and FUSE files)
        yield offset, count
        offset += count
    yield from _buffer_copy(src_fd, dst_fd, offset)


class ReadBackError(OSError):
    """Reading the destination back failed: the error names the destination, not the source."""


def _read_back(fd: int, offset: int, count: int, digest: Crc32c) -> None:
    """Extend the digest with [offset, offset + count) of the destination, read through the page cache."""
    end = offset + count
    while offset < end:
        try:
            data = os.pread(fd, min(KERNEL_CHUNK, end - offset), offset)
        except OSError as err:
            raise ReadBackError(err.errno, err.strerror) from None
        if not data:
            raise ReadBackError(errno.EIO, f"the copy ends at byte {offset} of {end} when read back")
        digest.update(data)
        offset += len(data)


def copy_checksummed(src_fd: int, dst_fd: int, window: WritebackWindow | None = None) -> tuple[int, str]:
    """Copy src to dst, each chunk read back into the CRC32C right after it is copied (still in the page
    cache) and then handed to the writeback window; returns (size, CRC32C of the destination)."""
    digest, size = Crc32c(), 0
    for offset, count in copy_chunks(src_fd, dst_fd):
        _read_back(dst_fd, offset, count, digest)
        if window is not None:
            window.copied(offset, count)
        size = offset + count
    return size, digest.encoded()


def _checksum(fd: int) -> tuple[int, str]:
    """(size, CRC32C) of the whole file, read through the page cache."""
    digest, size = Crc32c(), os.fstat(fd).st_size
    _read_back(fd, 0, size, digest)
    return size, digest.encoded()


class _Reflink:
    """Whether FICLONE has worked on this destination so far (one refusal turns it off for the tree)."""

    def __init__(self) -> None:
        self.possible = True

    def clone(self, src_fd: int, dst_fd: int) -> bool:
        if not self.possible:
            return False
        try:
            fcntl.ioctl(dst_fd, FICLONE, src_fd)
            return True
        except OSError as err:
            if err.errno not in _NO_REFLINK:
                raise
            self.possible = False
            return False


def _naming(err: OSError, path: Path | str) -> OSError:
    """The error with the file it happened to (an fd's errors name none)."""
    if err.filename is None:
        err.filename = str(path)
    return err


def _flush_and_close(fd: int, checksum: Future, window: WritebackWindow | None) -> tuple[int, str]:
    try:
        os.fsync(fd)
        if window is not None:
            window.destination_flushed()
    finally:
        wait([checksum])  # a reflinked clone's checksum thread may still be reading this fd
        os.close(fd)
    return checksum.result()


def _finished(result: tuple[int, str]) -> Future:
    done: Future = Future()
    done.set_result(result)
    return done


class TreeCopier:
    """Copies files one after the other, each read back into its checksum as it is copied; each one's
    fsync completes in the background while the next file is copied."""

    def __init__(self) -> None:
        self._checksummer = ThreadPoolExecutor(1, thread_name_prefix="copy-checksum")  # reflinked clones
        self._flusher = ThreadPoolExecutor(1, thread_name_prefix="copy-flush")
        self._reflink = _Reflink()
        self._files: dict[str, Future] = {}

    def _copy(self, src_fd: int, dst_fd: int) -> tuple[Future, WritebackWindow | None]:
        """Copy src to dst; a future of (size, CRC32C) of the destination, and the file's window."""
        if self._reflink.clone(src_fd, dst_fd):  # no byte copied: read the clone once, on another thread
            return self._checksummer.submit(_checksum, dst_fd), None
        window = WritebackWindow(src_fd, dst_fd)
        checksum = _finished(copy_checksummed(src_fd, dst_fd, window))
        window.source_done()
        return checksum, window

    def start(self, rel: str, src: Path, dst: Path) -> None:
        """Copy src to dst now; its fsync finishes later (collected by `results`)."""
        src_fd = os.open(src, os.O_RDONLY)
        try:
            dst_fd = os.open(dst, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                checksum, window = self._copy(src_fd, dst_fd)
            except OSError as err:
                os.close(dst_fd)
                raise _naming(err, dst if isinstance(err, ReadBackError) else src) from None
            except BaseException:
                os.close(dst_fd)
                raise
        finally:
            os.close(src_fd)
        self._files[rel] = self._flusher.submit(_flush_and_close, dst_fd, checksum, window)
        shutil.copymode(src, dst)

    def results(self) -> dict[str, dict]:
        """{relative path: {"size", "crc32c"}} once every file is checksummed and on disk."""
        files, self._files = self._files, {}
        out = {}
        for rel, done in files.items():
            try:
                size, checksum = done.result()
            except OSError as err:
                raise _naming(err, rel) from None
            out[rel] = {"size": size, CHECKSUM: checksum}
        return out

    def abandon(self) -> None:
        """After a failure: wait until no thread holds an fd, ignoring what they raise."""
        wait(list(self._files.values()))
        self._files = {}

    def close(self) -> None:
        self._checksummer.shutdown(wait=True)
        self._flusher.shutdown(wait=True)

    def __enter__(self) -> TreeCopier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def copy_file_hashing(src: Path, dst: Path) -> tuple[int, str]:
    """Copy src to dst durably; returns (size, CRC32C of the bytes written)."""
    with TreeCopier() as copier:
        copier.start(dst.name, src, dst)
        meta = copier.results()[dst.name]
    return meta["size"], meta[CHECKSUM]


def copy_tree_hashing(src: Path, dst: Path, skip: frozenset[str] = frozenset()) -> dict[str, dict]:
    """Copy every file below src into dst; returns {relative path: {"size", "crc32c"}} of what was written."""
    with TreeCopier() as copier:
        try:
            for dirpath, dirnames, names in os.walk(src):
                rel_dir = Path(dirpath).relative_to(src)
                (dst / rel_dir).mkdir(parents=True, exist_ok=True)
                dirnames.sort()
                for name in sorted(names):
                    rel = (rel_dir / name).as_posix()
                    if rel not in skip:
                        copier.start(rel, Path(dirpath, name), dst / rel_dir / name)
        except BaseException:
            copier.abandon()
            raise
        return copier.results()
