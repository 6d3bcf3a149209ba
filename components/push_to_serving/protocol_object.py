"""Publish protocol on object stores (gs://, s3://), where there is no rename.

1. Upload the model under `.staging-<id>/` (TF Serving ignores non-numeric names), next to a lease object
   `.staging-<id>.lease` that says the push is alive: several files at once, each checksummed by the client
   library during the transfer (crc32c on GCS, CRC32 on S3); write the manifest; compare the staged
   listing with it (names and sizes: nothing is read back).
2. Claim a version number N by creating `.claims/N` only if absent (GCS `ifGenerationMatch=0`, S3
   `If-None-Match: *`): exactly one of several concurrent pushes wins each number.
3. Copy server-side into `N/`: `variables/`, `assets/` and the rest in parallel, `saved_model.pb` last
   (TF Serving cannot load the version before it exists), then the manifest, which marks it complete.
   Staging first and copying server-side keeps the time `N/` exists without `saved_model.pb` to the
   store's copy time: TF Serving retries a failed load only a few times (`max_num_load_retries`), then
   never again for that version, so a client upload straight into `N/` over a slow link could lose it.

A live push refreshes its lease from a heartbeat thread every few seconds, whatever it is doing. A push
killed mid-way leaves a staging prefix whose lease stops being refreshed, and possibly a claimed `N/`
without a manifest; a later push removes both once that lease is older than `stale_after`.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from kfp_tfserving.components.common.errors import PublishError
from kfp_tfserving.components.common.storage import Storage, join_uri
from kfp_tfserving.components.common.storage.base import UPLOAD_WORKERS
from kfp_tfserving.components.push_to_serving.manifest import MANIFEST_NAME, Manifest
from kfp_tfserving.components.push_to_serving.versions import (
    CLAIMS_DIR,
    DEFAULT_STALE_AFTER,
    STAGING_PREFIX,
    first_candidate,
    numeric_versions,
    read_manifest,
    remove_version,
    verify_files,
    version_uri,
)

LEASE_SUFFIX = ".lease"
HEARTBEAT_SECONDS = 30.0


def _started_at(storage: Storage, uri: str) -> float | None:
    """When the push behind a lease last said it was alive; None when the lease is gone. A lease that is
    there but cannot be read or parsed counts as just written: nothing is removed on a guess."""
    try:
        doc = json.loads(storage.read_bytes(uri))
        return float(doc.get("started_at", doc.get("claimed_at")))
    except Exception:
        with contextlib.suppress(Exception):
            if not storage.exists(uri):
                return None
        return time.time()


def _is_stale(stamp: float | None, stale_after: float) -> bool:
    return stamp is None or time.time() - stamp > stale_after


def clean_stale(storage: Storage, base: str, stale_after: float = DEFAULT_STALE_AFTER) -> list[str]:
    """Remove what dead pushes left: staging prefixes and versions claimed but never completed."""
    removed = []
    names = storage.list_dir(base)
    for name in names:
        if not name.startswith(STAGING_PREFIX) or name.endswith(LEASE_SUFFIX):
            continue
        lease = join_uri(base, name + LEASE_SUFFIX)
        if _is_stale(_started_at(storage, lease), stale_after):
            storage.delete_tree(join_uri(base, name))
            storage.delete_tree(lease)
            removed.append(name)
    for name in names:
        if name.startswith(STAGING_PREFIX) and name.endswith(LEASE_SUFFIX):
            lease = join_uri(base, name)
            if name[: -len(LEASE_SUFFIX)] not in names and _is_stale(
                _started_at(storage, lease), stale_after
            ):
                storage.delete_tree(lease)
    claims = set(storage.list_dir(join_uri(base, CLAIMS_DIR)))
    for number in numeric_versions(storage, base):
        # Only numbers this tool claimed: a version written by anything else is never touched.
        if str(number) in claims and read_manifest(storage, base, number) is None:
            owner = _claim_owner(storage, join_uri(base, CLAIMS_DIR, str(number)))
            owner_lease = join_uri(base, f"{STAGING_PREFIX}{owner}{LEASE_SUFFIX}")
            if not _is_stale(_started_at(storage, owner_lease), stale_after):
                continue
            # A push deletes its lease only once it has ended, so look at the version again after the
            # lease: one that completed between the first look and the lease read has its manifest now.
            if read_manifest(storage, base, number) is None:
                remove_version(storage, base, number)
                removed.append(str(number))
    return removed


def _claim_owner(storage: Storage, claim_uri: str) -> str:
    try:
        return str(json.loads(storage.read_bytes(claim_uri)).get("owner", ""))
    except Exception:
        return ""


class _Lease:
    """Says "this staging prefix and the version it claims belong to a live push".

    A heartbeat thread rewrites it every `every` seconds, so a push stuck in one long upload still shows
    it is alive, and a dead one is recognised after `stale_after` rather than hours later.
    """

    def __init__(self, storage: Storage, uri: str, stale_after: float):
        self.storage, self.uri = storage, uri
        self.every = min(HEARTBEAT_SECONDS, stale_after / 4)
        self._stopped = threading.Event()
        self._write()
        self._thread = threading.Thread(target=self._beat, name="push-lease", daemon=True)
        self._thread.start()

    def _write(self) -> None:
        self.storage.write_bytes(self.uri, json.dumps({"started_at": time.time()}).encode())

    def _beat(self) -> None:
        while not self._stopped.wait(self.every):
            # A missed beat only ages the lease; the push reports its own storage errors.
            with contextlib.suppress(Exception):
                self._write()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


def _claim(storage: Storage, base: str, policy: str, version: int, owner: str) -> int:
    claims_uri = join_uri(base, CLAIMS_DIR)
    claimed = [int(n) for n in storage.list_dir(claims_uri) if n.isdigit()]
    candidate = first_candidate(sorted(set(claimed) | set(numeric_versions(storage, base))), policy, version)
    for _ in range(1000):
        claim = join_uri(claims_uri, str(candidate))
        body = json.dumps({"owner": owner, "claimed_at": time.time()}).encode()
        won = storage.write_bytes(claim, body, if_absent=True)
        if not won:  # a retried create that had in fact succeeded comes back as "taken": by us?
            try:
                won = json.loads(storage.read_bytes(claim)).get("owner") == owner
            except Exception:
                won = False
        if won and not storage.is_dir(version_uri(base, candidate)):
            return candidate
        if policy == "explicit":
            raise PublishError(
                f"{version_uri(base, candidate)}: version {candidate} is taken or was used before",
                "choose another --version",
            )
        candidate += 1
    raise PublishError(f"{base}: could not claim a free version number after 1000 tries")


def _model_files(model_dir: Path) -> list[str]:
    return [
        p.relative_to(model_dir).as_posix()
        for p in model_dir.rglob("*")
        if p.is_file() and p.name != MANIFEST_NAME
    ]


def copy_order(rel: str) -> tuple[int, str]:
    """variables/ and assets/ first, then the rest, saved_model.pb last: TF Serving loads a version only
    once saved_model.pb exists, so by then everything it reads is in place."""
    if rel.startswith("variables/"):
        rank = 0
    elif rel.startswith("assets/"):
        rank = 1
    elif rel in ("saved_model.pb", "saved_model.pbtxt"):
        rank = 3
    else:
        rank = 2
    return rank, rel


def _copy_one(storage: Storage, staging: str, target: str, rel: str, size: int) -> None:
    if not storage.copy(join_uri(staging, rel), join_uri(target, rel), if_absent=True):
        # A retried copy that had succeeded is fine; anything else means someone else wrote here.
        sizes = dict(storage.walk_files(join_uri(target, rel)))
        if list(sizes.values()) != [size]:
            raise PublishError(f"{join_uri(target, rel)}: already exists with other content")


def _promote(storage: Storage, staging: str, target: str, manifest: Manifest) -> float:
    """Server-side copies into `target`; returns the seconds it held files but no saved_model.pb.

    Everything but the graph is copied in parallel (the store copies, the client only waits), then the graph,
    then the manifest. That window is what bounds TF Serving's view of a half-made version: it is the
    store's copy time (a rewrite within a GCS bucket, a CopyObject or, above 5 GB, a multipart copy on S3),
    not the client's upload bandwidth.
    """
    ordered = sorted(manifest.files, key=copy_order)
    graphs = [rel for rel in ordered if copy_order(rel)[0] == 3]
    rest = [rel for rel in ordered if copy_order(rel)[0] != 3]
    started = time.monotonic()
    with ThreadPoolExecutor(UPLOAD_WORKERS, thread_name_prefix="promote") as pool:
        futures = [
            pool.submit(_copy_one, storage, staging, target, rel, manifest.files[rel]["size"]) for rel in rest
        ]
        for future in futures:
            future.result()
    for rel in graphs:
        _copy_one(storage, staging, target, rel, manifest.files[rel]["size"])
    without_graph = time.monotonic() - started
    storage.copy(join_uri(staging, MANIFEST_NAME), join_uri(target, MANIFEST_NAME), if_absent=True)
    return without_graph


def publish_object(
    storage: Storage,
    model_dir: Path,
    base: str,
    manifest: Manifest | Future,
    policy: str,
    version: int,
    stale_after: float = DEFAULT_STALE_AFTER,
) -> tuple[int, Manifest]:
    """Upload, verify, claim and promote; returns the version number claimed and the manifest.

    The manifest may still be being computed (a Future): hashing then overlaps the upload.
    """
    clean_stale(storage, base, stale_after)
    owner = uuid.uuid4().hex
    staging = join_uri(base, f"{STAGING_PREFIX}{owner}")
    lease = _Lease(storage, staging + LEASE_SUFFIX, stale_after)
    number = None
    try:
        started = time.monotonic()
        uploaded = sorted(_model_files(model_dir), key=copy_order)
        storage.upload_files([(model_dir / rel, join_uri(staging, rel)) for rel in uploaded])
        upload_seconds = time.monotonic() - started
        if isinstance(manifest, Future):
            manifest = manifest.result()
        if sorted(manifest.files) != sorted(uploaded):
            raise PublishError(
                f"{model_dir}: files appeared or vanished while it was being pushed",
                "make sure nothing writes to the model while it is being pushed",
            )
        manifest.published_at = time.time()
        storage.write_bytes(join_uri(staging, MANIFEST_NAME), manifest.to_json().encode())
        problems = verify_files(storage, staging, manifest)
        if problems:
            raise PublishError(f"{staging}: the staged copy does not match its manifest ({problems[0]})")
        number = _claim(storage, base, policy, version, owner)
        target = version_uri(base, number)
        started = time.monotonic()
        without_graph = _promote(storage, staging, target, manifest)
        print(
            f"{target}: upload {upload_seconds:.2f} s, promote {time.monotonic() - started:.2f} s "
            f"(files without saved_model.pb for {without_graph:.2f} s)",
            flush=True,
        )
        problems = verify_files(storage, target, manifest)
        if problems:
            raise PublishError(f"{target}: the published copy does not match its manifest ({problems[0]})")
        number_done, number = number, None
        return number_done, manifest
    finally:
        lease.stop()
        if number is not None:  # claimed but not completed: take the partial version away again
            remove_version(storage, base, number)
        storage.delete_tree(staging)
        storage.delete_tree(lease.uri)
