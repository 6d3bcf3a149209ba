"""gs:// storage through google-cloud-storage.

Credentials are whatever the client finds by itself (Application Default Credentials, Workload Identity on
GKE, `STORAGE_EMULATOR_HOST` for an emulator); nothing here reads or logs them. Every call uses the
client's own retry policy; writes that must not replace an object use `if_generation_match=0`, which GCS
enforces atomically (412 when the name is taken).
"""

from __future__ import annotations

from pathlib import Path

import requests
from google.api_core import exceptions as gexc
from google.auth.exceptions import DefaultCredentialsError
from google.cloud import storage as gcs
from google.cloud.storage import transfer_manager
from google.cloud.storage.retry import DEFAULT_RETRY, _should_retry

from kfp_tfserving.components.common.errors import StorageError, TransientStorageError
from kfp_tfserving.components.common.storage.base import (
    UPLOAD_WORKERS,
    ProgressCallback,
    Storage,
    bucket_and_key,
    is_refused,
    key_prefix,
    read_deadline,
    stall_timeout,
    stalled,
)

_CHUNK = 8 * 1024 * 1024
# Resumable uploads send a file in chunks, each read into memory and sent as one request. Larger chunks
# mean fewer round trips (and, on the emulator, far less work: it rewrites the partial object on every
# chunk); the budget bounds the memory of all chunks in flight together, whatever the number of workers.
_UPLOAD_MEMORY = 512 * 1024 * 1024
_CHUNK_LIMITS = (8 * 1024 * 1024, 256 * 1024 * 1024)
_CHUNK_ALIGN = 256 * 1024  # GCS requires chunk sizes in multiples of 256 KiB
_SINGLE_REQUEST = 8 * 1024 * 1024  # the client sends files up to this size in one request, unchunked


def upload_chunk_size(sizes: list[int], workers: int) -> int:
    """Chunk size for the resumable uploads of these files when `workers` run at once."""
    chunked = sum(1 for size in sizes if size > _SINGLE_REQUEST)
    share = _UPLOAD_MEMORY // max(1, min(workers, chunked))
    low, high = _CHUNK_LIMITS
    return max(low, min(high, share)) // _CHUNK_ALIGN * _CHUNK_ALIGN


def _bucket_key(uri: str) -> tuple[str, str]:
    return bucket_and_key(uri, "gs")


# Answers after which the same request may succeed (the client's own retries already gave up on them).
_TRANSIENT = (
    gexc.TooManyRequests,
    gexc.InternalServerError,
    gexc.BadGateway,
    gexc.ServiceUnavailable,
    gexc.GatewayTimeout,
    gexc.DeadlineExceeded,
    gexc.RetryError,
)


_CONNECT_TIMEOUT = 15
# The client raises requests' own exceptions when its retry policy does not retry them (a stalled read).
_ERRORS = (gexc.GoogleAPIError, requests.exceptions.RequestException)


def _retry_timeout() -> float:
    """The client's own retry deadline (120 s), shortened by a shorter read deadline."""
    return min(DEFAULT_RETRY.timeout or 120.0, read_deadline())


def _is_stall(err: BaseException | None) -> bool:
    """A read timeout: connected, and the server sent nothing for the stall timeout."""
    seen = 0
    while err is not None and seen < 10:
        if isinstance(err, requests.exceptions.ReadTimeout) or "Read timed out" in str(err):
            return True
        err = err.__cause__ or err.__context__
        seen += 1
    return False


def _retry():
    """The client's retry policy, except for stalled reads, which fail at once."""
    return DEFAULT_RETRY.with_timeout(_retry_timeout()).with_predicate(
        lambda err: not _is_stall(err) and _should_retry(err)
    )


def _timeout() -> tuple[float, float]:
    """(connect, read) timeouts of one request: a read receiving nothing for the stall timeout fails."""
    return (_CONNECT_TIMEOUT, stall_timeout())


def _fail(uri: str, err: Exception) -> StorageError:
    reason = getattr(err, "message", None) or type(err).__name__
    if _is_stall(err):
        return stalled(uri, "google-cloud-storage read timeout")
    if is_refused(err):
        gave_up = (
            f"; google-cloud-storage's retry policy gave up after {_retry_timeout():g} s"
            if isinstance(err, gexc.RetryError)
            else ""
        )
        return TransientStorageError(
            f"{uri}: cannot connect (connection refused{gave_up})",
            "check the endpoint ($STORAGE_EMULATOR_HOST) and retry",
        )
    if isinstance(err, gexc.RetryError):
        return TransientStorageError(
            f"{uri}: timed out after {_retry_timeout():g} s of retries ({type(err.cause).__name__})",
            "check the endpoint and the network, or raise $KFP_TFSERVING_READ_DEADLINE (--read-deadline)",
        )
    if isinstance(err, _TRANSIENT):
        return TransientStorageError(f"{uri}: Cloud Storage is unavailable for now ({reason})", "retry later")
    if isinstance(err, gexc.NotFound):
        return StorageError(f"{uri}: not found ({reason})", "check the bucket and path")
    if isinstance(err, gexc.Forbidden):
        return StorageError(
            f"{uri}: access denied ({reason})", "grant the step's service account access to the bucket"
        )
    return StorageError(f"{uri}: Cloud Storage request failed ({reason})", "check the URI and retry")


class GCSStorage(Storage):
    scheme = "gs"

    def __init__(self, client: gcs.Client | None = None):
        self._client = client

    @property
    def client(self) -> gcs.Client:
        if self._client is None:
            try:
                self._client = gcs.Client()
            except DefaultCredentialsError:
                raise StorageError(
                    "gs://: no Google Cloud credentials found",
                    "set GOOGLE_APPLICATION_CREDENTIALS, use Workload Identity on GKE, or run "
                    "`gcloud auth application-default login`",
                ) from None
        return self._client

    def _blob(self, uri: str) -> gcs.Blob:
        bucket, key = _bucket_key(uri)
        if not key:
            raise StorageError(f"{uri}: names a bucket, not an object", "add the object's path")
        return self.client.bucket(bucket).blob(key)

    def _list(self, uri: str, prefix: str, delimiter: str | None = None):
        bucket, _ = _bucket_key(uri)
        try:
            return self.client.list_blobs(
                bucket, prefix=prefix, delimiter=delimiter, retry=_retry(), timeout=_timeout()
            )
        except _ERRORS as err:
            raise _fail(uri, err) from None

    def _blobs(self, uri: str, prefix: str) -> list[gcs.Blob]:
        try:
            return list(self._list(uri, prefix))
        except _ERRORS as err:
            raise _fail(uri, err) from None

    def _is_object(self, uri: str) -> bool:
        _, key = _bucket_key(uri)
        if not key or key.endswith("/"):
            return False
        try:
            return self._blob(uri).exists(retry=_retry(), timeout=_timeout())
        except _ERRORS as err:
            raise _fail(uri, err) from None

    def exists(self, uri: str) -> bool:
        return self._is_object(uri) or self.is_dir(uri)

    def is_dir(self, uri: str) -> bool:
        _, key = _bucket_key(uri)
        try:
            return any(True for _ in self._list(uri, key_prefix(key)))
        except _ERRORS as err:
            raise _fail(uri, err) from None

    def list_dir(self, uri: str) -> list[str]:
        _, key = _bucket_key(uri)
        prefix = key_prefix(key)
        names = set()
        try:
            pages = self._list(uri, prefix, delimiter="/")
            for blob in pages:
                names.add(blob.name[len(prefix) :])
            names.update(p[len(prefix) :].rstrip("/") for p in pages.prefixes)
        except _ERRORS as err:
            raise _fail(uri, err) from None
        return sorted(n for n in names if n)

    def walk_files(self, uri: str) -> list[tuple[str, int]]:
        _, key = _bucket_key(uri)
        if self._is_object(uri):
            blob = self._blob(uri)
            blob.reload(retry=_retry(), timeout=_timeout())
            return [(key.rsplit("/", 1)[-1], int(blob.size or 0))]
        prefix = key_prefix(key)
        # Zero-byte "folder" placeholders some tools write are not files.
        return sorted(
            (b.name[len(prefix) :], int(b.size or 0))
            for b in self._blobs(uri, prefix)
            if not b.name.endswith("/")
        )

    def stored_crc32c(self, uri: str) -> dict[str, str]:
        """Cloud Storage keeps every object's CRC32C (verified on upload); the listing carries it."""
        _, key = _bucket_key(uri)
        prefix = key_prefix(key)
        return {
            b.name[len(prefix) :]: b.crc32c
            for b in self._blobs(uri, prefix)
            if b.crc32c and not b.name.endswith("/")
        }

    def _download_one(self, blob: gcs.Blob, dest: Path, progress: ProgressCallback | None) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with (
            blob.open("rb", chunk_size=_CHUNK, retry=_retry(), timeout=_timeout()) as fin,
            open(dest, "wb") as fout,
        ):
            while chunk := fin.read(_CHUNK):
                fout.write(chunk)
                if progress:
                    progress(len(chunk))

    def download(self, uri: str, dest: Path, progress: ProgressCallback | None = None) -> Path:
        try:
            if self._is_object(uri):
                self._download_one(self._blob(uri), dest, progress)
                return dest
            bucket, key = _bucket_key(uri)
            prefix = key_prefix(key)
            blobs = [b for b in self._blobs(uri, prefix) if not b.name.endswith("/")]
            if not blobs:
                raise StorageError(f"{uri}: no such object or prefix", "check the bucket and path")
            for blob in blobs:
                self._download_one(blob, dest / blob.name[len(prefix) :], progress)
        except _ERRORS as err:
            raise _fail(uri, err) from None
        dest.mkdir(parents=True, exist_ok=True)
        return dest

    def upload_file(self, local: Path, uri: str, *, if_absent: bool = False) -> bool:
        try:
            self._blob(uri).upload_from_filename(
                str(local),
                if_generation_match=0 if if_absent else None,
                checksum="crc32c",  # the client compares it with what GCS stored, or the upload fails
                retry=_retry(),
            )
            return True
        except gexc.PreconditionFailed:
            return False
        except _ERRORS as err:
            raise _fail(uri, err) from None

    def upload_files(self, pairs: list[tuple[Path, str]], *, workers: int = UPLOAD_WORKERS) -> None:
        """Files in parallel through the client's transfer manager, each crc32c-checked by the client."""
        if not pairs:
            return
        chunk = upload_chunk_size([local.stat().st_size for local, _ in pairs], workers)
        blobs = [(str(local), self._blob(uri)) for local, uri in pairs]
        for _, blob in blobs:
            blob.chunk_size = chunk
        try:
            transfer_manager.upload_many(
                blobs,
                upload_kwargs={"checksum": "crc32c", "retry": _retry()},
                worker_type=transfer_manager.THREAD,
                max_workers=workers,
                raise_exception=True,
            )
        except _ERRORS as err:
            raise _fail(pairs[0][1].rsplit("/", 1)[0], err) from None

    def read_bytes(self, uri: str) -> bytes:
        try:
            return self._blob(uri).download_as_bytes(retry=_retry(), timeout=_timeout())
        except _ERRORS as err:
            raise _fail(uri, err) from None

    def write_bytes(self, uri: str, data: bytes, *, if_absent: bool = False) -> bool:
        try:
            self._blob(uri).upload_from_string(
                data, if_generation_match=0 if if_absent else None, retry=_retry()
            )
            return True
        except gexc.PreconditionFailed:
            return False
        except _ERRORS as err:
            raise _fail(uri, err) from None

    def copy(self, src_uri: str, dst_uri: str, *, if_absent: bool = False) -> bool:
        """Server-side copy of one object. With if_absent, return False when the destination exists."""
        src, dst = self._blob(src_uri), self._blob(dst_uri)
        try:
            token = None
            while True:  # large or cross-location copies take several rewrite calls
                token, _, _ = dst.rewrite(
                    src, token=token, if_generation_match=0 if if_absent else None, retry=_retry()
                )
                if token is None:
                    return True
        except gexc.PreconditionFailed:
            return False
        except _ERRORS as err:
            raise _fail(dst_uri, err) from None

    def delete_tree(self, uri: str) -> None:
        _, key = _bucket_key(uri)
        blobs = self._blobs(uri, key_prefix(key))
        if key and not key.endswith("/"):
            blobs.append(self._blob(uri))
        for blob in blobs:
            try:
                blob.delete(retry=_retry())
            except gexc.NotFound:
                pass
            except _ERRORS as err:
                raise _fail(uri, err) from None
