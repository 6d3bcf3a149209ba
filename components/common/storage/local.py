"""Local filesystem storage: plain paths, file:// URIs and mounted volumes (a PVC)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from kfp_tfserving.components.common.errors import StorageError
from kfp_tfserving.components.common.storage.base import ProgressCallback, Storage, split_scheme
from kfp_tfserving.components.common.tree_walk import regular_files

_CHUNK = 8 * 1024 * 1024


def local_path(uri: str) -> Path:
    scheme, rest = split_scheme(uri)
    if scheme != "file":
        raise StorageError(f"{uri}: not a local path")
    return Path(rest if not rest.startswith("//") else rest[1:]).expanduser()


def copy_file(src: Path, dst: Path, progress: ProgressCallback | None = None) -> None:
    """Stream a file in chunks (never whole in memory), reporting progress."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while chunk := fin.read(_CHUNK):
            fout.write(chunk)
            if progress:
                progress(len(chunk))
    shutil.copymode(src, dst)


class LocalStorage(Storage):
    scheme = "file"

    def exists(self, uri: str) -> bool:
        path = local_path(uri)
        return path.is_file() or (path.is_dir() and any(path.iterdir()))

    def is_dir(self, uri: str) -> bool:
        return local_path(uri).is_dir()

    def list_dir(self, uri: str) -> list[str]:
        path = local_path(uri)
        return sorted(os.listdir(path)) if path.is_dir() else []

    def walk_files(self, uri: str) -> list[tuple[str, int]]:
        root = local_path(uri)
        if root.is_file():
            return [(root.name, root.stat().st_size)]
        # Regular files only, links kept inside the tree, size capped: a FIFO or /dev/zero is never read.
        return sorted((rel, size) for rel, _, size in regular_files(root, uri))

    def download(self, uri: str, dest: Path, progress: ProgressCallback | None = None) -> Path:
        src = local_path(uri)
        if not src.exists():
            raise StorageError(f"{src}: no such file or directory", "check the path")
        if src.is_file():
            copy_file(src, dest, progress)
            return dest
        for rel, _ in self.walk_files(uri):
            copy_file(src / rel, dest / rel, progress)
        dest.mkdir(parents=True, exist_ok=True)
        return dest

    def upload_file(self, local: Path, uri: str, *, if_absent: bool = False) -> bool:
        target = local_path(uri)
        if if_absent and target.exists():
            return False
        copy_file(local, target)
        return True

    def read_bytes(self, uri: str) -> bytes:
        try:
            return local_path(uri).read_bytes()
        except OSError as err:
            raise StorageError(f"{uri}: cannot read ({err.strerror})") from err

    def write_bytes(self, uri: str, data: bytes, *, if_absent: bool = False) -> bool:
        target = local_path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if not if_absent:
            os.replace(tmp, target)
            return True
        try:  # link() refuses an existing name: an exclusive create that is also atomic
            os.link(tmp, target)
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def delete_tree(self, uri: str) -> None:
        path = local_path(uri)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink()
