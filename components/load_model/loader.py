"""Fetch a model into the step's artifact and detect its format. No TensorFlow import here."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kfp_tfserving.components.common.errors import StorageError, reports_errors
from kfp_tfserving.components.common.formats import detect_format
from kfp_tfserving.components.common.progress import TransferProgress
from kfp_tfserving.components.common.storage import split_scheme, storage_for


def _source_name(source_uri: str) -> str:
    _, rest = split_scheme(source_uri)
    name = PurePosixPath(rest.rstrip("/")).name
    return name or "model"


def fetch(source_uri: str, dest_dir: Path) -> Path:
    """Copy the source (file or tree) to dest_dir/<its name>, with progress; returns that path."""
    storage = storage_for(source_uri)
    if not storage.exists(source_uri):
        raise StorageError(
            f"{source_uri}: not found (or an empty directory)", "check the model's path or URI"
        )
    total = storage.total_size(source_uri)
    target = dest_dir / _source_name(source_uri)
    with TransferProgress(f"fetching {source_uri}", total) as progress:
        storage.download(source_uri, target, progress)
    return target


def load_source(
    source_uri: str, artifact_dir: Path, metadata: dict[str, Any], model_format: str = "auto"
) -> str:
    """Fill the load step's Model artifact; returns the detected format's name."""
    artifact_dir.mkdir(parents=True, exist_ok=True)
    fetched = fetch(source_uri, artifact_dir)
    handler, entry = detect_format(fetched, model_format)
    metadata.update(
        {
            "format": handler.name,
            "format_description": handler.description,
            "entry": entry.relative_to(artifact_dir).as_posix(),
            "source_uri": source_uri,
        }
    )
    print(f"{source_uri}: {handler.description} (format '{handler.name}')", flush=True)
    return handler.name


run_load_step = reports_errors(load_source)
