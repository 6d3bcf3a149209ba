"""Safe extraction of model archives (.tar.gz, .tgz, .tar, .zip).

Every entry is checked before anything is written (names, entry types, declared sizes), and the bytes
actually written are counted again while extracting, because headers can lie.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from kfp_tfserving.components.common.errors import StorageError
from kfp_tfserving.components.common.progress import human_bytes
from kfp_tfserving.components.common.size_limits import (  # noqa: F401 - part of this module's interface
    DEFAULT_MAX_BYTES,
    MAX_BYTES_ENV,
    max_extract_bytes,
)

MAX_ENTRIES = 200_000  # an inode bomb is refused like a size bomb
_CHUNK = 1024 * 1024

_TAR_SUFFIXES = {".tar": "tar", ".tar.gz": "tar.gz", ".tgz": "tar.gz", ".tar.bz2": "tar.bz2"}
_TAR_SUFFIXES |= {".tar.xz": "tar.xz", ".txz": "tar.xz"}
# Files whose bytes happen to be a zip but which are models, never archives to unpack.
_ZIP_MODELS = {".keras"}
_DRIVE = re.compile(r"^[A-Za-z]:")
_FIX = "repack the archive with plain files and folders under relative paths"


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str  # "file" or "dir"
    size: int
    executable: bool = False


@dataclass(frozen=True)
class ExtractResult:
    kind: str  # "tar.gz", "zip", ...
    files: int
    size: int  # bytes written


def archive_kind(path: Path) -> str | None:
    """'zip', 'tar', 'tar.gz', ... when the file is an archive to unpack; None otherwise.

    The name decides first; a name without a known suffix (an http URL like `.../1?format=compressed`)
    is recognised by its magic bytes. A `.keras` file is a zip but a model, so it is never unpacked.
    """
    if path.is_dir():
        return None
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    for suffix, kind in _TAR_SUFFIXES.items():
        if name.endswith(suffix):
            return kind
    if path.suffix.lower() in _ZIP_MODELS or not path.is_file():
        return None
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(b"\x1f\x8b"):
        return "tar.gz" if _is_tar(path) else None
    if head.startswith(b"PK\x03\x04") and zipfile.is_zipfile(path):
        return "zip"
    if head[257:262] == b"ustar":
        return "tar"
    return None


def _is_tar(path: Path) -> bool:
    try:
        with tarfile.open(path, "r:*") as tar:
            return tar.next() is not None
    except (tarfile.TarError, OSError, EOFError):
        return False


def _refuse(label: str, name: str, what: str) -> StorageError:
    return StorageError(f"{label}: entry '{name}' {what}", f"refusing to extract; {_FIX}")


def _safe_relative(label: str, name: str) -> str:
    """The entry's path relative to the target, or a refusal; '' for the archive root itself."""
    if "\0" in name:
        raise _refuse(label, name, "has a NUL byte in its name")
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise _refuse(label, name, "has an absolute path")
    parts = [p for p in re.split(r"[/\\]", name) if p not in ("", ".")]
    if ".." in parts:
        raise _refuse(label, name, "escapes the extraction directory with '..'")
    return PurePosixPath(*parts).as_posix() if parts else ""


def _tar_entries(tar: tarfile.TarFile, label: str, target: Path) -> Iterator[tuple[Entry, tarfile.TarInfo]]:
    for member in tar:  # lazily: a bomb's first huge header is refused before its data is read
        if member.issym() or member.islnk():
            raise _refuse(label, member.name, f"is a {'symbolic' if member.issym() else 'hard'} link")
        if not (member.isreg() or member.isdir()):
            raise _refuse(label, member.name, "is a device, FIFO or other special file")
        rel = _safe_relative(label, member.name)
        try:  # the standard library's own rules, as a second opinion
            tarfile.data_filter(member, str(target))
        except tarfile.FilterError as err:
            raise _refuse(label, member.name, f"is unsafe ({err})") from None
        kind = "dir" if member.isdir() else "file"
        yield Entry(rel, kind, member.size if kind == "file" else 0, bool(member.mode & 0o111)), member


def _zip_entries(archive: zipfile.ZipFile, label: str) -> Iterator[tuple[Entry, zipfile.ZipInfo]]:
    for info in archive.infolist():
        mode = info.external_attr >> 16
        file_type = stat.S_IFMT(mode)
        if stat.S_ISLNK(mode):
            raise _refuse(label, info.filename, "is a symbolic link")
        if file_type and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise _refuse(label, info.filename, "is a device, FIFO or other special file")
        if info.flag_bits & 0x1:
            raise StorageError(
                f"{label}: entry '{info.filename}' is encrypted", "repack the archive without a password"
            )
        rel = _safe_relative(label, info.filename)
        kind = "dir" if info.is_dir() else "file"
        yield Entry(rel, kind, info.file_size if kind == "file" else 0, bool(mode & 0o111)), info


@contextmanager
def _open_entries(archive: Path, kind: str, label: str, target: Path):
    """Yields a function returning fresh (entry, opener) pairs: one pass to check, one to extract."""
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:

                def zip_pass():
                    for entry, info in _zip_entries(zf, label):
                        yield entry, (lambda info=info: zf.open(info))

                yield zip_pass
        else:

            def tar_pass():
                with tarfile.open(archive, "r:*") as tar:
                    for entry, member in _tar_entries(tar, label, target):
                        yield entry, (lambda member=member, tar=tar: tar.extractfile(member))

            yield tar_pass
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise StorageError(
            f"{label}: not a readable {kind} archive ({err})", "check the download or repack it"
        ) from None


def _skipped(rel: str) -> bool:
    # Finder's resource-fork folder would otherwise sit next to the model and hide it from detection.
    return rel == "" or rel.split("/", 1)[0] == "__MACOSX"


def _check(entries: Iterator[tuple[Entry, object]], label: str, limit: int) -> tuple[int, int]:
    count = declared = 0
    for entry, _ in entries:
        count += 1
        declared += entry.size
        if count > MAX_ENTRIES:
            raise StorageError(
                f"{label}: more than {MAX_ENTRIES} entries", f"refusing to extract; {_FIX} with fewer files"
            )
        if declared > limit:
            raise _too_big(label, entry.name, limit)
    return count, declared


def _too_big(label: str, name: str, limit: int) -> StorageError:
    return StorageError(
        f"{label}: expands past the {human_bytes(limit)} limit (at entry '{name}')",
        f"refusing to extract; raise ${MAX_BYTES_ENV} (bytes) if the model really is that large",
    )


def _write(src: IO[bytes], dest: Path, entry: Entry, label: str, budget: int, limit: int) -> int:
    """Stream one entry to disk; stops as soon as it passes its declared size or the archive's budget."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    written = 0
    fd = os.open(dest, flags, 0o755 if entry.executable else 0o644)
    with os.fdopen(fd, "wb") as out:
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            if written > budget:
                raise _too_big(label, entry.name, limit)
            if written > entry.size:
                raise _refuse(label, entry.name, "holds more data than its header declares")
            out.write(chunk)
    return written


def extract_archive(
    archive: Path,
    target: Path,
    *,
    max_bytes: int | None = None,
    label: str | None = None,
    kind: str | None = None,
) -> ExtractResult:
    """Unpack `archive` into the new directory `target`; refuses unsafe entries and size bombs.

    kind: 'zip', 'tar', ... when the caller knows it (a `.keras` model is a zip that archive_kind never
    calls an archive). On any refusal nothing stays behind: `target` is removed.
    """
    label = label or archive.name
    kind = kind or archive_kind(archive)
    if kind is None:
        raise StorageError(f"{label}: not a .tar.gz, .tgz, .tar or .zip archive")
    limit = max_extract_bytes(max_bytes)
    target.mkdir(parents=True, exist_ok=False)
    root = target.resolve()
    try:
        with _open_entries(archive, kind, label, root) as entries:
            _, declared = _check(entries(), label, limit)
            free = shutil.disk_usage(root).free
            if declared > free:
                raise StorageError(
                    f"{label}: needs {human_bytes(declared)} to extract, {human_bytes(free)} free at {root}",
                    "free some disk space",
                )
            files = total = 0
            for entry, opener in entries():
                if _skipped(entry.name):
                    continue
                dest = root / entry.name
                if not dest.resolve().is_relative_to(root):  # belt and braces over the name checks
                    raise _refuse(label, entry.name, "resolves outside the extraction directory")
                if entry.kind == "dir":
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                try:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with opener() as src:
                        total += _write(src, dest, entry, label, limit - total, limit)
                except (IsADirectoryError, NotADirectoryError, FileExistsError) as err:
                    raise _refuse(label, entry.name, f"clashes with another entry ({err.strerror})") from None
                except OSError as err:  # a full disk, a read-only target
                    raise StorageError(
                        f"{label}: cannot write entry '{entry.name}' to {root} ({err.strerror})",
                        "check the free space and permissions there",
                    ) from None
                files += 1
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return ExtractResult(kind, files, total)


def archive_stem(name: str) -> str:
    """'resnet.tar.gz' -> 'resnet': the folder an archive unpacks into."""
    lower = name.lower()
    for suffix in sorted([*_TAR_SUFFIXES, ".zip"], key=len, reverse=True):
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name or "model"
