"""The published versions under a base path, on any storage: listing, verification, removal, retention."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from kfp_tfserving.components.common.errors import UserError
from kfp_tfserving.components.common.storage import Storage, join_uri
from kfp_tfserving.components.common.storage.local import local_path
from kfp_tfserving.components.push_to_serving.manifest import (
    CHECKSUM,
    MANIFEST_NAME,
    Manifest,
    verify_manifest,
)

# Names under a base path that TF Serving ignores (they do not parse as integers).
STAGING_PREFIX = ".staging-"
REMOVING_PREFIX = ".removing-"
CLAIMS_DIR = ".claims"
# Object stores: a push whose lease was not refreshed for this long (twenty missed heartbeats) is dead.
DEFAULT_STALE_AFTER = 600.0


@dataclass
class VersionInfo:
    number: int
    manifest: Manifest | None
    problems: list[str]  # empty when the files match the manifest
    size: int

    @property
    def verified(self) -> bool:
        return self.manifest is not None and not self.problems


def numeric_versions(storage: Storage, base: str) -> list[int]:
    """What TF Serving would load: children whose names parse as integers."""
    if storage.scheme == "file":
        path = local_path(base)
        if not path.is_dir():
            return []
        return sorted(int(p.name) for p in path.iterdir() if p.name.isdigit() and p.is_dir())
    return sorted(int(name) for name in storage.list_dir(base) if name.isdigit())


def version_uri(base: str, number: int) -> str:
    return join_uri(base, str(number))


def read_manifest(storage: Storage, base: str, number: int) -> Manifest | None:
    try:
        return Manifest.from_json(storage.read_bytes(join_uri(version_uri(base, number), MANIFEST_NAME)))
    except Exception:  # missing, unreadable or damaged: all mean "not a verified version"
        return None


def verify_files(storage: Storage, uri: str, manifest: Manifest, *, deep: bool = False) -> list[str]:
    """Compare a published or staged tree with its manifest. Local trees are checksummed; on object stores
    the sizes are compared and, where the store keeps one (Cloud Storage), each object's CRC32C with the
    manifest's, which proves the stored bytes are the bytes the manifest describes without reading them
    back; `deep` checksums a downloaded copy."""
    if storage.scheme == "file":
        return verify_manifest(local_path(uri), manifest)
    if deep:
        with tempfile.TemporaryDirectory(prefix="kfp-tfserving-verify-") as tmp:
            return verify_manifest(storage.download(uri, Path(tmp) / "v"), manifest)
    found = {rel: size for rel, size in storage.walk_files(uri) if rel != MANIFEST_NAME}
    stored = storage.stored_crc32c(uri) if any(CHECKSUM in meta for meta in manifest.files.values()) else {}
    problems = []
    for rel, meta in sorted(manifest.files.items()):
        if rel not in found:
            problems.append(f"{rel}: missing")
        elif found[rel] != meta["size"]:
            problems.append(f"{rel}: size {found[rel]} differs from the manifest's {meta['size']}")
        elif CHECKSUM in meta and rel in stored and stored[rel] != meta[CHECKSUM]:
            problems.append(
                f"{rel}: the stored crc32c {stored[rel]} differs from the manifest's {meta[CHECKSUM]}"
            )
    problems += [f"{rel}: not in the manifest" for rel in sorted(set(found) - set(manifest.files))]
    return problems


def inspect_version(storage: Storage, base: str, number: int, *, deep: bool = False) -> VersionInfo:
    uri = version_uri(base, number)
    manifest = read_manifest(storage, base, number)
    size = storage.total_size(uri)
    if manifest is None:
        return VersionInfo(number, None, [f"{MANIFEST_NAME}: missing or unreadable"], size)
    return VersionInfo(number, manifest, verify_files(storage, uri, manifest, deep=deep), size)


def remove_version(storage: Storage, base: str, number: int) -> None:
    """Take a version away so that TF Serving never sees it half-deleted.

    Locally it is first renamed to a name TF Serving ignores (atomic), then deleted. On object stores
    saved_model.pb goes first: without it the version can no longer be loaded, then the rest follows.
    """
    uri = version_uri(base, number)
    if storage.scheme == "file":
        path = local_path(uri)
        parking = path.with_name(f"{REMOVING_PREFIX}{number}-{uuid.uuid4().hex[:8]}")
        try:
            path.rename(parking)
        except FileNotFoundError:
            return
        shutil.rmtree(parking, ignore_errors=True)
        return
    for name in ("saved_model.pb", "saved_model.pbtxt"):
        storage.delete_tree(join_uri(uri, name))
    storage.delete_tree(uri)  # its claim stays: a removed number is never handed out again


def versions_to_remove(versions: list[int], keep: int, protected: set[int]) -> list[int]:
    """The oldest versions beyond `keep`, never the newest and never a protected (labelled) one."""
    if keep <= 0 or len(versions) <= keep:
        return []
    newest = max(versions)
    candidates = sorted(versions)[: len(versions) - keep]
    return [v for v in candidates if v != newest and v not in protected]


def first_candidate(existing: list[int], policy: str, version: int) -> int:
    if policy == "explicit":
        if version <= 0:
            raise UserError(f"version policy 'explicit' needs a positive --version (got {version})")
        return version
    highest = (existing or [0])[-1]
    if policy == "timestamp":
        return max(int(time.time()), highest + 1)
    return highest + 1
