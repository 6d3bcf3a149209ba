"""Fetch a model into the step's artifact, unpack it if it is an archive, detect its format.

No TensorFlow import here.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

from kfp_tfserving.components.common.archives import archive_kind, archive_stem, extract_archive
from kfp_tfserving.components.common.artifacts import LoadedModelMetadata
from kfp_tfserving.components.common.errors import StorageError, naming_the_source, reports_errors
from kfp_tfserving.components.common.formats import detect_format
from kfp_tfserving.components.common.progress import TransferProgress, human_bytes
from kfp_tfserving.components.common.redaction import redact
from kfp_tfserving.components.common.storage import Storage, split_scheme, storage_for
from kfp_tfserving.components.common.storage.base import deadline_of
from kfp_tfserving.components.common.storage.local import local_path
from kfp_tfserving.components.common.tree_walk import check_tree, regular_files

_CHUNK = 4 * 1024 * 1024


def _source_name(source_uri: str) -> str:
    scheme, rest = split_scheme(source_uri)
    if scheme in ("http", "https"):
        from kfp_tfserving.components.common.storage.http import url_file_name

        name = url_file_name(source_uri)
    else:
        name = PurePosixPath(rest.rstrip("/")).name
    return name or "model"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(root: Path) -> tuple[str, int]:
    """One digest over every file's relative path and sha256, and the total size, of a directory."""
    lines, size = [], 0
    for rel, full, file_size in regular_files(root):
        size += file_size
        lines.append(f"{rel}\0{sha256_file(full)}\n")
    return hashlib.sha256("".join(sorted(lines)).encode()).hexdigest(), size


def _checkpoint_siblings(storage: Storage, source_uri: str, name: str) -> dict[str, str]:
    """A TF1 checkpoint given by its .meta (or .index) file: the other files sharing its prefix, name -> URI."""
    suffix = next((s for s in (".meta", ".index") if name.endswith(s)), None)
    if suffix is None or storage.scheme in ("http", "https"):
        return {}
    prefix = name[: -len(suffix)]
    parent = source_uri.rstrip("/").rsplit("/", 1)[0] if "/" in source_uri else "."
    data = re.compile(re.escape(prefix) + r"\.(meta|index|data-\d+-of-\d+)")
    return {n: f"{parent}/{n}" for n in storage.list_dir(parent) if n != name and data.fullmatch(n)}


def _download(storage: Storage, source_uri: str, target: Path) -> Path:
    total = storage.total_size(source_uri)
    with TransferProgress(f"fetching {redact(source_uri)}", total or None) as progress:
        storage.download(source_uri, target, progress)
    return target


@contextlib.contextmanager
def _local_file(storage: Storage, source_uri: str, name: str) -> Iterator[Path]:
    """The source file on this machine: the file itself when local, else a download in a temp dir."""
    if storage.scheme == "file":
        yield local_path(source_uri)
        return
    # $TMPDIR, not the artifact: an archive must not be uploaded with the step's output.
    with tempfile.TemporaryDirectory(prefix="kfp-tfserving-download-") as tmp:
        yield _download(storage, source_uri, Path(tmp) / name)


def copy_hashing(src: Path, dst: Path, progress: TransferProgress) -> str:
    """Copy src to dst in one read of it; returns its sha256. Each chunk is hashed by a second thread while
    it is written (hashlib and the write both release the GIL), so the hash costs no pass of its own."""
    digest = hashlib.sha256()
    dst.parent.mkdir(parents=True, exist_ok=True)
    hasher = ThreadPoolExecutor(1, thread_name_prefix="load-hash")
    with hasher, open(src, "rb") as fin, open(dst, "wb") as fout:
        hashing = None
        while chunk := fin.read(_CHUNK):
            if hashing is not None:
                hashing.result()  # at most two chunks in memory
            hashing = hasher.submit(digest.update, chunk)
            fout.write(chunk)
            progress(len(chunk))
        if hashing is not None:
            hashing.result()
    shutil.copymode(src, dst)
    return digest.hexdigest()


def _place_file(local: Path, target: Path, source_uri: str, from_temp: bool) -> str:
    """Put the source file at target; returns its sha256."""
    if from_temp:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(local, target)
        return sha256_file(target)
    with TransferProgress(f"fetching {redact(source_uri)}", local.stat().st_size) as progress:
        return copy_hashing(local, target, progress)


def fetch(
    source_uri: str, artifact_dir: Path, max_extract_bytes: int | None = None
) -> tuple[Path, dict[str, Any]]:
    """Bring the source into artifact_dir (unpacking archives); returns its path there and what was fetched."""
    storage = storage_for(source_uri)
    if storage.scheme == "file" and os.path.lexists(local_path(source_uri)):
        check_tree(local_path(source_uri), source_uri, max_extract_bytes)  # FIFO, device, link out: refused
    if not storage.exists(source_uri):
        remote = storage.scheme != "file"
        raise StorageError(
            f"{source_uri}: not found" + ("" if remote else " (or an empty directory)"),
            "check the model's URI" if remote else "check the model's path",
        )
    name = _source_name(source_uri)
    if storage.is_dir(source_uri):
        target = _download(storage, source_uri, artifact_dir / name)
        digest, size = sha256_tree(target)
        return target, {"source_sha256": digest, "source_bytes": size, "archive": "", "archive_format": ""}
    with _local_file(storage, source_uri, name) as local:
        info: dict[str, Any] = {
            "source_sha256": "",
            "source_bytes": local.stat().st_size,
            "archive": "",
            "archive_format": "",
        }
        kind = archive_kind(local)
        if kind is None:
            target = artifact_dir / name
            # The copy hashes what it reads: the source is read once.
            info["source_sha256"] = _place_file(local, target, source_uri, from_temp=storage.scheme != "file")
            for sibling, uri in _checkpoint_siblings(storage, source_uri, name).items():
                storage.download(uri, artifact_dir / sibling)
            return target, info
        info["source_sha256"] = sha256_file(local)
        target = artifact_dir / archive_stem(name)
        result = extract_archive(local, target, max_bytes=max_extract_bytes, label=source_uri)
    print(
        f"{redact(source_uri)}: unpacked {result.files} files ({human_bytes(result.size)}) from {kind}",
        flush=True,
    )
    info.update(
        {
            "archive": name,
            "archive_format": kind,
            "extracted_files": result.files,
            "extracted_bytes": result.size,
        }
    )
    return target, info


PAIR_FORMAT = "keras_architecture_weights"


def _fetch_pair(
    source_uri: str, weights_uri: str, artifact_dir: Path, max_extract_bytes: int | None
) -> tuple[Path, dict[str, Any]]:
    """An architecture file and its weights, fetched side by side into one folder of the artifact."""
    arch_name, weights_name = _source_name(source_uri), _source_name(weights_uri)
    if arch_name == weights_name:
        raise StorageError(
            f"{weights_uri}: the weights have the architecture's file name ({arch_name})",
            "give the weights file its own name",
        )
    folder = artifact_dir / (PurePosixPath(arch_name).stem or "model")
    arch, info = fetch(source_uri, folder, max_extract_bytes)
    weights, weights_info = fetch(weights_uri, folder, max_extract_bytes)
    if not arch.is_file() or not weights.is_file():
        raise StorageError(
            f"{source_uri if not arch.is_file() else weights_uri}: expected a file, not a directory or archive",
            "give the architecture (.json/.yaml) and the weights file themselves",
        )
    info.update(
        {
            "weights_uri": redact(weights_uri),
            "weights_sha256": weights_info["source_sha256"],
            "weights_bytes": weights_info["source_bytes"],
        }
    )
    return folder, info


def load_source(
    source_uri: str,
    artifact_dir: Path,
    metadata: dict[str, Any],
    model_format: str = "auto",
    max_extract_bytes: int = 0,
    read_deadline: float = 0.0,
    weights_uri: str = "",
    stall_timeout: float = 0.0,
) -> str:
    """Fill the load step's Model artifact; returns the detected format's name.

    max_extract_bytes: how far an archive may expand (0: $KFP_TFSERVING_MAX_EXTRACT_BYTES or 20 GiB).
    read_deadline: seconds a remote read may go without an answer (0: $KFP_TFSERVING_READ_DEADLINE or 300).
    weights_uri: the weights of a Keras architecture file given as source_uri (an architecture + weights pair).
    stall_timeout: seconds a remote read may receive nothing (0: $KFP_TFSERVING_STALL_TIMEOUT or 60).
    """
    artifact_dir.mkdir(parents=True, exist_ok=True)
    if weights_uri and model_format in ("", "auto"):
        model_format = PAIR_FORMAT
    with deadline_of(read_deadline, stall_timeout):
        if weights_uri:
            fetched, fetched_info = _fetch_pair(
                source_uri, weights_uri, artifact_dir, max_extract_bytes or None
            )
        else:
            fetched, fetched_info = fetch(source_uri, artifact_dir, max_extract_bytes or None)
    with naming_the_source(fetched, source_uri):
        handler, entry = detect_format(fetched, model_format)
    loaded = LoadedModelMetadata.from_dict(fetched_info)
    loaded.format = handler.name
    loaded.format_description = handler.description
    loaded.entry = entry.relative_to(artifact_dir).as_posix()
    loaded.source_uri = redact(source_uri)  # metadata is shown in the KFP UI and copied into manifests
    metadata.update(loaded.to_dict())
    print(f"{redact(source_uri)}: {handler.description} (format '{handler.name}')", flush=True)
    return handler.name


run_load_step = reports_errors(load_source)
