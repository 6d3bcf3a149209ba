"""The storage interface every backend implements."""

from __future__ import annotations

import abc
from collections.abc import Callable
from pathlib import Path

ProgressCallback = Callable[[int], None]  # called with the number of bytes just transferred
UPLOAD_WORKERS = 8  # files (and, on S3, parts of a large file) in flight at once


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
