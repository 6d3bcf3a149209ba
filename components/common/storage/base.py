"""The storage interface every backend implements."""

from __future__ import annotations

import abc
import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

ProgressCallback = Callable[[int], None]  # called with the number of bytes just transferred
UPLOAD_WORKERS = 8  # files (and, on S3, parts of a large file) in flight at once

DEADLINE_ENV = "KFP_TFSERVING_READ_DEADLINE"
DEFAULT_DEADLINE = 300.0
# A read that receives nothing for this long fails (the read timeout boto3 and most clients default to);
# the read deadline above still bounds connecting and retrying, and never cuts a download that moves.
STALL_ENV = "KFP_TFSERVING_STALL_TIMEOUT"
DEFAULT_STALL = 60.0


@contextlib.contextmanager
def _env_set(name: str, seconds: float) -> Iterator[None]:
    if seconds <= 0:
        yield
        return
    saved = os.environ.get(name)
    os.environ[name] = f"{seconds:g}"  # every backend reads it when it builds a request
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


@contextlib.contextmanager
def deadline_of(seconds: float, stall: float = 0.0) -> Iterator[None]:
    """Within the block, remote reads use `seconds` as their deadline and `stall` as their read timeout
    (0: leave it as configured)."""
    with _env_set(DEADLINE_ENV, seconds), _env_set(STALL_ENV, stall):
        yield


def _seconds_from(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = default
    return value if value > 0 else default


def stall_timeout() -> float:
    """Seconds a read may receive nothing before it fails: $KFP_TFSERVING_STALL_TIMEOUT or 60."""
    return _seconds_from(STALL_ENV, DEFAULT_STALL)


def stalled(uri: str, client: str = ""):
    """The failure of a read that received nothing for stall_timeout() seconds."""
    from kfp_tfserving.components.common.errors import TransientStorageError

    by = f" ({client})" if client else ""
    return TransientStorageError(
        f"{uri}: the server sent nothing for {stall_timeout():g} s{by}: the read timed out",
        f"check the server is answering, or raise ${STALL_ENV} (load step stall_timeout, --stall-timeout)",
    )


def read_deadline() -> float:
    """Seconds a remote read may wait in total (connecting, retrying, stalled): $KFP_TFSERVING_READ_DEADLINE
    or 300. Time spent receiving data does not count: a large download that keeps moving is never cut."""
    return _seconds_from(DEADLINE_ENV, DEFAULT_DEADLINE)


class Deadline:
    """The time left of one read's deadline; restarted whenever data arrives."""

    def __init__(self, seconds: float | None = None):
        import time

        self._clock = time.monotonic
        self.seconds = seconds or read_deadline()
        self._start = self._clock()

    def restart(self) -> None:
        self._start = self._clock()

    def remaining(self) -> float:
        return self.seconds - (self._clock() - self._start)

    def expired(self) -> bool:
        return self.remaining() <= 0

    def timed_out(self, uri: str):
        from kfp_tfserving.components.common.errors import TransientStorageError

        return TransientStorageError(
            f"{uri}: timed out after {self.seconds:g} s without an answer",
            f"check the server is up and answering, or raise ${DEADLINE_ENV} (--read-deadline)",
        )


def is_refused(err: BaseException) -> bool:
    """True when the failure (or one it wraps) is a refused TCP connection."""
    seen = 0
    while err is not None and seen < 10:
        if isinstance(err, ConnectionRefusedError) or "Connection refused" in str(err):
            return True
        err = (
            err.__cause__
            or err.__context__
            or (err.args[0] if err.args and isinstance(err.args[0], BaseException) else None)
        )
        seen += 1
    return False


def split_scheme(uri: str) -> tuple[str, str]:
    """('gs', 'bucket/key') for 'gs://bucket/key'; ('file', path) for a plain or file:// path."""
    if "://" not in uri:
        return "file", uri
    scheme, rest = uri.split("://", 1)
    return scheme.lower(), rest


def bucket_and_key(uri: str, scheme: str) -> tuple[str, str]:
    """('bucket', 'path/in/bucket') of an object-store URI such as gs://bucket/path; StorageError if malformed."""
    from kfp_tfserving.components.common.errors import StorageError

    found, rest = split_scheme(uri)
    if found != scheme or not rest or rest.startswith("/"):
        raise StorageError(f"{uri}: not a {scheme}://bucket/path URI", f"write it as {scheme}://BUCKET/PATH")
    bucket, _, key = rest.partition("/")
    return bucket, key


def key_prefix(key: str) -> str:
    """The key as a listing prefix: 'a/b/' for 'a/b', '' for the bucket's root."""
    key = key.strip("/")
    return f"{key}/" if key else ""


def join_uri(base: str, *parts: str) -> str:
    out = base.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


class Storage(abc.ABC):
    """A place holding files under '/'-separated names: a directory, a bucket prefix."""

    scheme: str = ""

    @abc.abstractmethod
    def exists(self, uri: str) -> bool:
        """True when the URI names a file or a non-empty directory/prefix."""

    @abc.abstractmethod
    def is_dir(self, uri: str) -> bool:
        """True when the URI names a directory (or, on object stores, a prefix holding objects)."""

    @abc.abstractmethod
    def list_dir(self, uri: str) -> list[str]:
        """Names of the immediate children of a directory or prefix, sorted."""

    @abc.abstractmethod
    def walk_files(self, uri: str) -> list[tuple[str, int]]:
        """Every file below the URI as (relative '/'-path, size), sorted by path."""

    @abc.abstractmethod
    def download(self, uri: str, dest: Path, progress: ProgressCallback | None = None) -> Path:
        """Copy a file or a whole tree to the local path `dest`; returns `dest`."""

    @abc.abstractmethod
    def upload_file(self, local: Path, uri: str, *, if_absent: bool = False) -> bool:
        """Write one file. With if_absent, refuse (return False) when the name is already taken."""

    def upload_files(self, pairs: list[tuple[Path, str]], *, workers: int = UPLOAD_WORKERS) -> None:
        """Write many files, several at a time where the backend can; the client checksums each transfer.

        The default writes them one after the other; object stores override it with their transfer managers.
        """
        for local, uri in pairs:
            self.upload_file(local, uri)

    @abc.abstractmethod
    def read_bytes(self, uri: str) -> bytes: ...

    @abc.abstractmethod
    def write_bytes(self, uri: str, data: bytes, *, if_absent: bool = False) -> bool:
        """Write small data atomically. With if_absent, return False when the name is already taken."""

    @abc.abstractmethod
    def delete_tree(self, uri: str) -> None:
        """Remove a file or everything below a prefix; missing is fine."""

    def total_size(self, uri: str) -> int:
        return sum(size for _, size in self.walk_files(uri))

    def stored_crc32c(self, uri: str) -> dict[str, str]:
        """{relative path: CRC32C as the store computed it (base64, big-endian)} for the files below the URI
        whose store keeps one; stores that keep none return {} and are compared by size only."""
        return {}
