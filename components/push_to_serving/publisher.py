"""Publish a SavedModel as the next version under a TF Serving model base path, atomically.

TF Serving loads any sub-directory whose name parses as an integer, so a version must appear complete or
not at all: it is staged under a name TF Serving ignores, verified against its manifest, then renamed.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfp_tfserving.components.common.errors import PublishError, UserError, reports_errors
from kfp_tfserving.components.common.storage.local import local_path
from kfp_tfserving.components.push_to_serving.manifest import (
    MANIFEST_NAME,
    Manifest,
    build_manifest,
    verify_manifest,
)

STAGING_PREFIX = ".staging-"
VERSION_POLICIES = ("next", "timestamp", "explicit")


@dataclass
class PushResult:
    version: int
    destination: str
    published: bool  # False when identical content was already the newest version
    content_digest: str


def numeric_versions(base: Path) -> list[int]:
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())


def read_manifest(version_dir: Path) -> Manifest | None:
    try:
        return Manifest.from_json((version_dir / MANIFEST_NAME).read_text())
    except (OSError, ValueError, KeyError):
        return None


def model_name_from_base_path(base_path: str) -> str:
    return base_path.rstrip("/").split("/")[-1] or "model"


def _first_candidate(base: Path, policy: str, version: int) -> int:
    if policy == "explicit":
        if version <= 0:
            raise UserError(f"version policy 'explicit' needs a positive --version (got {version})")
        return version
    if policy == "timestamp":
        return max(int(time.time()), (numeric_versions(base) or [0])[-1] + 1)
    return (numeric_versions(base) or [0])[-1] + 1


def _promote(staging: Path, base: Path, policy: str, version: int) -> int:
    """Rename staging to the first free version number. rename() onto an existing non-empty directory fails,
    so two concurrent pushes can never claim the same number."""
    candidate = _first_candidate(base, policy, version)
    for _ in range(1000):
        target = base / str(candidate)
        try:
            if target.exists():
                raise FileExistsError(target)
            os.rename(staging, target)
            return candidate
        except OSError as err:
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY) and not isinstance(err, FileExistsError):
                raise
            if policy == "explicit":
                raise PublishError(
                    f"{target}: version {candidate} already exists", "choose another --version"
                ) from None
            candidate += 1
    raise PublishError(f"{base}: could not claim a free version number after 1000 tries")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_local(
    model_dir: Path,
    base_path: str,
    *,
    source: dict[str, Any] | None = None,
    version_policy: str = "next",
    version: int = 0,
    force: bool = False,
) -> PushResult:
    if version_policy not in VERSION_POLICIES:
        raise UserError(
            f"unknown version policy '{version_policy}'", f"use one of {', '.join(VERSION_POLICIES)}"
        )
    if not (model_dir / "saved_model.pb").is_file():
        raise PublishError(
            f"{model_dir}: not a SavedModel (no saved_model.pb)", "push the export step's output"
        )
    base = local_path(base_path)
    base.mkdir(parents=True, exist_ok=True)
    manifest = build_manifest(model_dir, source or {})

    existing = numeric_versions(base)
    if existing and not force and version_policy != "explicit":
        newest = read_manifest(base / str(existing[-1]))
        if newest is not None and newest.content_digest == manifest.content_digest:
            print(
                f"{base / str(existing[-1])}: identical content is already the newest version; nothing published"
            )
            return PushResult(existing[-1], str(base / str(existing[-1])), False, manifest.content_digest)

    staging = base / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
    try:
        shutil.copytree(model_dir, staging)
        (staging / MANIFEST_NAME).write_text(manifest.to_json())
        problems = verify_manifest(staging, manifest)
        if problems:
            raise PublishError(f"{staging}: the staged copy does not match its manifest ({problems[0]})")
        for path in [staging, *[p for p in staging.rglob("*") if p.is_dir()]]:
            _fsync_dir(path)
        number = _promote(staging, base, version_policy, version)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    _fsync_dir(base)
    destination = base / str(number)
    print(f"published version {number}: {destination}", flush=True)
    return PushResult(number, str(destination), True, manifest.content_digest)


def push_step(
    model_dir: Path,
    model_metadata: dict[str, Any],
    pushed_metadata: dict[str, Any],
    base_path: str,
    model_name: str = "",
    version_policy: str = "next",
    version: int = 0,
    force: bool = False,
) -> PushResult:
    """Publish and fill the pushed-model artifact's metadata with TFX Pusher's keys."""
    source = {k: model_metadata.get(k, "") for k in ("source_uri", "source_format")}
    result = publish_local(
        model_dir, base_path, source=source, version_policy=version_policy, version=version, force=force
    )
    pushed_metadata.update(
        {
            "pushed": 1 if result.published else 0,
            "pushed_destination": result.destination,
            "pushed_version": str(result.version),
            "model_name": model_name or model_name_from_base_path(base_path),
            "base_path": base_path,
            "content_digest": result.content_digest,
            "serving_signature": model_metadata.get("signatures", {}).get("serving_default", {}),
        }
    )
    return result


run_push_step = reports_errors(push_step)
