"""Copy a tree in one read pass: each file is hashed and flushed to disk while it is being copied.

Publishing used to read a model three times (hash the source, copy it, hash the copy to verify it) and
then fsync everything at the end. Here the bytes read are written and hashed from the same buffer, the
hashing runs on another core (hashlib releases the GIL), and dirty pages are flushed in the background
while later chunks are copied, so the final fsync finds little left to do.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

CHUNK = 8 * 1024 * 1024
FLUSH_EVERY = 64 * 1024 * 1024


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        written = os.write(fd, view)
        view = view[written:]


def copy_file_hashing(src: Path, dst: Path, pool: ThreadPoolExecutor) -> tuple[int, str]:
    """Copy src to dst durably; returns (size, sha256 of the bytes written)."""
    digest = hashlib.sha256()
    buffers = (bytearray(CHUNK), bytearray(CHUNK))
    size = unflushed = 0
    hashing: Future | None = None
    flushing: Future | None = None
    src_fd = os.open(src, os.O_RDONLY)
    dst_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for turn in itertools.count():
            # This buffer's previous hash finished: we waited for it before submitting the last one.
            buffer = buffers[turn % 2]
            count = os.readv(src_fd, [buffer])
            if count == 0:
                break
            view = memoryview(buffer)[:count]
            _write_all(dst_fd, view)
            if hashing is not None:
                hashing.result()
            hashing = pool.submit(digest.update, view)
            size += count
            unflushed += count
            if unflushed >= FLUSH_EVERY and (flushing is None or flushing.done()):
                flushing = pool.submit(os.fdatasync, dst_fd)
                unflushed = 0
        for pending in (hashing, flushing):
            if pending is not None:
                pending.result()
        os.fsync(dst_fd)
    finally:
        os.close(src_fd)
        os.close(dst_fd)
    shutil.copymode(src, dst)
    return size, digest.hexdigest()


def copy_tree_hashing(src: Path, dst: Path, skip: frozenset[str] = frozenset()) -> dict[str, dict]:
    """Copy every file below src into dst; returns {relative path: {"size", "sha256"}} of what was written."""
    files: dict[str, dict] = {}
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="copy") as pool:
        for dirpath, dirnames, names in os.walk(src):
            rel_dir = Path(dirpath).relative_to(src)
            (dst / rel_dir).mkdir(parents=True, exist_ok=True)
            dirnames.sort()
            for name in sorted(names):
                rel = (rel_dir / name).as_posix()
                if rel in skip:
                    continue
                size, sha = copy_file_hashing(Path(dirpath, name), dst / rel_dir / name, pool)
                files[rel] = {"size": size, "sha256": sha}
    return files
