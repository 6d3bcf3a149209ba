"""Publish protocol on a local path or mounted volume (a PVC): stage, verify, then one POSIX rename.

The staging directory is held with an exclusive flock for the life of the push. The kernel drops the lock
when the process dies, however it dies, so a later push knows a staging directory it can lock is stale.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from kfp_tfserving.components.common.errors import PublishError
from kfp_tfserving.components.push_to_serving.copying import copy_tree_hashing
from kfp_tfserving.components.push_to_serving.manifest import MANIFEST_NAME, Manifest
from kfp_tfserving.components.push_to_serving.versions import (
    REMOVING_PREFIX,
    STAGING_PREFIX,
    first_candidate,
)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive lock on the directory, or None when another live process holds it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except OSError:
        os.close(fd)
        return None


def clean_stale(base: Path) -> list[str]:
    """Remove staging and half-removed directories whose push is no longer running."""
    removed = []
    for entry in sorted(base.iterdir()) if base.is_dir() else []:
        if entry.name.startswith(STAGING_PREFIX) and entry.is_dir():
            fd = _try_lock(entry)
            if fd is None:
                continue  # a live push holds it
            try:
                shutil.rmtree(entry, ignore_errors=True)
            finally:
                os.close(fd)
            removed.append(entry.name)
        elif entry.name.startswith(REMOVING_PREFIX):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed


@contextlib.contextmanager
def _locked_staging(base: Path) -> Iterator[Path]:
    # A concurrent push's clean_stale() may take a fresh directory before we lock it; then try another name.
    for _ in range(20):
        staging = base / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
        staging.mkdir()
        fd = _try_lock(staging)
        if fd is not None:
            try:
                if os.stat(staging).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
    else:
        raise PublishError(f"{base}: cannot lock a staging directory", "check the volume supports flock")
    try:
        yield staging
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        os.close(fd)


def numeric_dirs(base: Path) -> list[int]:
    return sorted(int(p.name) for p in base.iterdir() if p.name.isdigit() and p.is_dir())


def _promote(staging: Path, base: Path, policy: str, version: int) -> int:
    """Rename staging to the first free number. rename() onto an existing non-empty directory fails, so two
    concurrent pushes can never claim the same number."""
    candidate = first_candidate(numeric_dirs(base), policy, version)
    for _ in range(1000):
        target = base / str(candidate)
        try:
            if target.exists():
                raise FileExistsError(errno.EEXIST, "exists", str(target))
            os.rename(staging, target)
            return candidate
        except OSError as err:
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            if policy == "explicit":
                raise PublishError(
                    f"{target}: version {candidate} already exists", "choose another --version"
                ) from None
            candidate += 1
    raise PublishError(f"{base}: could not claim a free version number after 1000 tries")


def publish_local(
    model_dir: Path, base: Path, manifest: Manifest | None, policy: str, version: int, source: dict
) -> tuple[int, Manifest]:
    """Copy (hashing as it goes), verify, promote; returns the version number claimed and the manifest.

    Without a manifest, the one written describes the bytes copied; with one (hashed beforehand), the copy
    must match it, which also catches a source that changed while it was being published.
    """
    base.mkdir(parents=True, exist_ok=True)
    clean_stale(base)
    with _locked_staging(base) as staging:
        written = copy_tree_hashing(model_dir, staging, skip=frozenset({MANIFEST_NAME}))
        if manifest is None:
            manifest = Manifest(written, source)
        elif written != manifest.files:
            changed = sorted(set(written) ^ set(manifest.files)) or sorted(
                rel for rel in written if written[rel] != manifest.files[rel]
            )
            raise PublishError(
                f"{staging}: the staged copy does not match its manifest ({changed[0]} differs)",
                "make sure nothing writes to the model while it is being pushed",
            )
        manifest.published_at = time.time()
        manifest_path = staging / MANIFEST_NAME
        manifest_path.write_text(manifest.to_json())
        with open(manifest_path, "rb") as f:
            os.fsync(f.fileno())
        for root, dirs, _ in os.walk(staging):
            for name in dirs:
                _fsync_dir(Path(root, name))
        _fsync_dir(staging)
        number = _promote(staging, base, policy, version)
    _fsync_dir(base)
    return number, manifest
