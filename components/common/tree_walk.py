"""The files of a model on this machine, refusing what must not be copied, hashed or uploaded.

A model directory may only hold directories and regular files. A symlink is followed when it stays inside
the model directory; one that leaves it (`assets/table.bin -> /dev/zero`, `-> /etc/passwd`) is refused, and
so are FIFOs (reading one blocks forever), sockets and devices. The total size is capped like an archive's
expansion ($KFP_TFSERVING_MAX_EXTRACT_BYTES, 20 GiB by default), so no copy fills the disk.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from kfp_tfserving.components.common.errors import StorageError
from kfp_tfserving.components.common.size_limits import MAX_BYTES_ENV, max_extract_bytes

_FIX = "a model directory may hold only directories and regular files"


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def check_local_source(path: Path, label: str = "") -> None:
    """A model path on this machine exists and is a regular file or a directory; one line otherwise."""
    label = label or str(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            raise StorageError(f"{label}: a symbolic link to nothing", "check the model's path") from None
        raise StorageError(f"{label}: not found", "check the model's path") from None
    except OSError as err:
        raise StorageError(f"{label}: cannot be read ({err.strerror})", "check the model's path") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise StorageError(
            f"{label}: is {_kind(mode)}, not a model file or directory",
            "give the path of the model file or directory itself",
        )


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def regular_files(
    root: Path, label: str = "", max_bytes: int | None = None
) -> Iterator[tuple[str, Path, int]]:
    """(relative '/'-path, path, size) of every regular file below root, depth first.

    StorageError naming the entry for a link leaving root, a broken link, a FIFO, socket or device, or
    when the sizes add up past max_bytes (default: the archive expansion limit).
    """
    label = label or str(root)
    limit = max_extract_bytes(max_bytes)
    real_root = os.path.realpath(root)
    seen: set[str] = set()
    total = 0
    stack: list[tuple[Path, str]] = [(root, "")]
    while stack:
        directory, prefix = stack.pop()
        real_dir = os.path.realpath(directory)
        if real_dir in seen:
            continue  # a link back into a directory already walked
        seen.add(real_dir)
        with os.scandir(directory) as listing:
            entries = sorted(listing, key=lambda e: e.name)
        subdirs = []
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_symlink() and not _inside(os.path.realpath(entry.path), real_root):
                raise StorageError(
                    f"{label}: {rel} is a symbolic link leading outside the model directory "
                    f"(to {os.path.realpath(entry.path)})",
                    f"replace it with the file itself; {_FIX}",
                )
            try:
                info = os.stat(entry.path)
            except OSError:
                raise StorageError(f"{label}: {rel} is a broken symbolic link", _FIX) from None
            if stat.S_ISDIR(info.st_mode):
                subdirs.append((Path(entry.path), rel + "/"))
            elif stat.S_ISREG(info.st_mode):
                total += info.st_size
                if total > limit:
                    raise StorageError(
                        f"{label}: larger than {limit} bytes (reached at {rel})",
                        f"refusing to copy; raise ${MAX_BYTES_ENV} (bytes) if the model really is that large",
                    )
                yield rel, Path(entry.path), info.st_size
            else:
                raise StorageError(f"{label}: {rel} is {_kind(info.st_mode)}", f"remove it; {_FIX}")
        stack.extend(reversed(subdirs))


def check_tree(path: Path, label: str = "", max_bytes: int | None = None) -> int:
    """Walk a model file or directory once without reading it; its total size, or StorageError.

    A single file is not capped here: it is a regular file of known size, and an archive's limit is on
    what it expands to (archives.py)."""
    check_local_source(path, label)
    if path.is_dir():
        return sum(size for _, _, size in regular_files(path, label, max_bytes))
    return path.stat().st_size
