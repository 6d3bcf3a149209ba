"""s3:// storage through boto3: AWS S3, and MinIO (Kubeflow's default artifact store) or any S3 endpoint.

Credentials and the endpoint are whatever boto3 finds by itself: the AWS_* environment variables, shared
config files, IRSA on EKS; `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` point it at MinIO. Nothing here reads
or logs them. Retries are botocore's "standard" mode; writes that must not replace an object send
`If-None-Match: *`, which S3 enforces atomically (412, or 409 while a concurrent write is in flight).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

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

_MAX_ATTEMPTS = 8
_TAKEN = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
# Large files go up (and are copied server-side) as parts, UPLOAD_WORKERS parts at a time.
_TRANSFER = TransferConfig(multipart_threshold=64 * 1024 * 1024, max_concurrency=UPLOAD_WORKERS)
# Server-side copies: one CopyObject request up to S3's 5 GB limit for it (the store copies, nothing travels
# through the client), a multipart copy of large parts in parallel only above it. Small copy parts cost a
# request each and made a 1 GB promote several times slower. The store computes the copy's own checksum
# (_CHECKSUM): a multipart source's per-part checksum does not describe a single-part copy.
_COPY_TRANSFER = TransferConfig(
    multipart_threshold=5 * 1024**3, multipart_chunksize=512 * 1024**2, max_concurrency=UPLOAD_WORKERS
)
# S3 verifies the CRC32 the client computes for every object and part, or refuses the upload.
_CHECKSUM = {"ChecksumAlgorithm": "CRC32"}


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _bucket_key(uri: str) -> tuple[str, str]:
    return bucket_and_key(uri, "s3")


# Error codes after which the same request may succeed (botocore's own retries already gave up on them).
_TRANSIENT_CODES = {
    "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling",
    "ThrottlingException", "RequestLimitExceeded", "500", "502", "503", "504",
}  # fmt: skip


def _fail(uri: str, err: Exception) -> StorageError:
    if is_refused(err) or isinstance(err, EndpointConnectionError) and "refused" in repr(err.__dict__):
        return TransientStorageError(
            f"{uri}: cannot connect (connection refused)",
            "check the endpoint ($AWS_ENDPOINT_URL_S3) and retry",
        )
    if isinstance(err, ReadTimeoutError) and stall_timeout() <= read_deadline() / _MAX_ATTEMPTS:
        return stalled(uri, "botocore's read timeout, on each attempt of its retry policy")
    if isinstance(err, (ReadTimeoutError, ConnectTimeoutError)):
        return TransientStorageError(
            f"{uri}: timed out after {read_deadline():g} s ({type(err).__name__})",
            "check the endpoint and the network, or raise $KFP_TFSERVING_READ_DEADLINE (--read-deadline)",
        )
    if isinstance(err, (BotoConnectionError, HTTPClientError)):  # connect/read timeouts, dropped connections
        return TransientStorageError(f"{uri}: S3 unreachable for now ({type(err).__name__})", "retry later")
    if isinstance(err, ClientError):
        code = _code(err)
        if code in _TRANSIENT_CODES:
            return TransientStorageError(f"{uri}: S3 is unavailable for now ({code})", "retry later")
        if code in ("NoSuchKey", "NoSuchBucket", "404"):
            return StorageError(f"{uri}: not found ({code})", "check the bucket and key")
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return StorageError(
                f"{uri}: access denied ({code})", "check the credentials and the bucket policy"
            )
        return StorageError(f"{uri}: S3 request failed ({code})", "check the URI and retry")
    if isinstance(err, NoCredentialsError):
        return StorageError(
            f"{uri}: no AWS credentials found",
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or an IAM role for the pod)",
        )
    if isinstance(err, S3UploadFailedError):  # the transfer manager wraps the ClientError in its text
        code = next(
            (c for c in ("NoSuchBucket", "AccessDenied", "BadDigest", "InvalidRequest") if c in str(err)), ""
        )
        if code == "NoSuchBucket":
            return StorageError(f"{uri}: not found ({code})", "check the bucket and key")
        return StorageError(
            f"{uri}: S3 upload failed ({code or 'see the endpoint logs'})", "check the URI and retry"
        )
    return StorageError(f"{uri}: S3 request failed ({type(err).__name__})", "check the endpoint and retry")


class S3Storage(Storage):
    scheme = "s3"

    def __init__(self, client=None):
        self._client = client

    @property
    def client(self):
        if self._client is None:
            # botocore has no total deadline: the attempts' timeouts are cut so that together they fit in it.
            per_attempt = max(1.0, read_deadline() / _MAX_ATTEMPTS)
            config = Config(
                retries={"mode": "standard", "max_attempts": _MAX_ATTEMPTS},
                connect_timeout=min(60, per_attempt),
                read_timeout=min(stall_timeout(), per_attempt),
            )
            self._client = boto3.client("s3", config=config)
        return self._client

    def _objects(self, uri: str, prefix: str) -> list[dict]:
        bucket, _ = _bucket_key(uri)
        out = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                out.extend(page.get("Contents", []))
        except (ClientError, BotoCoreError) as err:
            raise _fail(uri, err) from None
        return out

    def _head(self, uri: str) -> dict | None:
        bucket, key = _bucket_key(uri)
        if not key or key.endswith("/"):
            return None
        try:
            return self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as err:
            if _code(err) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise _fail(uri, err) from None
        except BotoCoreError as err:
            raise _fail(uri, err) from None

    def exists(self, uri: str) -> bool:
        return self._head(uri) is not None or self.is_dir(uri)

    def is_dir(self, uri: str) -> bool:
        bucket, key = _bucket_key(uri)
        try:
            page = self.client.list_objects_v2(Bucket=bucket, Prefix=key_prefix(key), MaxKeys=1)
        except (ClientError, BotoCoreError) as err:
            raise _fail(uri, err) from None
        return bool(page.get("KeyCount") or page.get("Contents"))

    def list_dir(self, uri: str) -> list[str]:
        bucket, key = _bucket_key(uri)
        prefix = key_prefix(key)
        names = set()
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix, Delimiter="/"
            )
            for page in pages:
                names.update(o["Key"][len(prefix) :] for o in page.get("Contents", []))
                names.update(p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", []))
        except (ClientError, BotoCoreError) as err:
            raise _fail(uri, err) from None
        return sorted(n for n in names if n)

    def walk_files(self, uri: str) -> list[tuple[str, int]]:
        head = self._head(uri)
        _, key = _bucket_key(uri)
        if head is not None:
            return [(key.rsplit("/", 1)[-1], int(head["ContentLength"]))]
        prefix = key_prefix(key)
        return sorted(
            (o["Key"][len(prefix) :], int(o["Size"]))
            for o in self._objects(uri, prefix)
            if not o["Key"].endswith("/")
        )

    def download(self, uri: str, dest: Path, progress: ProgressCallback | None = None) -> Path:
        bucket, key = _bucket_key(uri)
        if self._head(uri) is not None:
            pairs = [(key, dest)]
        else:
            prefix = key_prefix(key)
            pairs = [
                (o["Key"], dest / o["Key"][len(prefix) :])
                for o in self._objects(uri, prefix)
                if not o["Key"].endswith("/")
            ]
            if not pairs:
                raise StorageError(f"{uri}: no such object or prefix", "check the bucket and key")
        try:
            for name, target in pairs:
                target.parent.mkdir(parents=True, exist_ok=True)
                self.client.download_file(bucket, name, str(target), Callback=progress, Config=_TRANSFER)
        except (ClientError, BotoCoreError) as err:
            raise _fail(uri, err) from None
        if len(pairs) != 1 or pairs[0][1] != dest:
            dest.mkdir(parents=True, exist_ok=True)
        return dest

    def upload_file(self, local: Path, uri: str, *, if_absent: bool = False) -> bool:
        bucket, key = _bucket_key(uri)
        try:
            if if_absent:  # conditional writes are a PutObject feature, not the transfer manager's
                with open(local, "rb") as body:
                    self.client.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*", **_CHECKSUM)
            else:
                self.client.upload_file(str(local), bucket, key, ExtraArgs=_CHECKSUM, Config=_TRANSFER)
            return True
        except ClientError as err:
            if if_absent and _code(err) in _TAKEN:
                return False
            raise _fail(uri, err) from None
        except (BotoCoreError, S3UploadFailedError) as err:
            raise _fail(uri, err) from None

    def upload_files(self, pairs: list[tuple[Path, str]], *, workers: int = UPLOAD_WORKERS) -> None:
        """Files in parallel (boto3's client is thread-safe), large ones additionally in parallel parts."""
        with ThreadPoolExecutor(max(1, min(workers, len(pairs))), thread_name_prefix="s3-upload") as pool:
            for future in [pool.submit(self.upload_file, local, uri) for local, uri in pairs]:
                future.result()

    def read_bytes(self, uri: str) -> bytes:
        bucket, key = _bucket_key(uri)
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as err:
            raise _fail(uri, err) from None

    def write_bytes(self, uri: str, data: bytes, *, if_absent: bool = False) -> bool:
        bucket, key = _bucket_key(uri)
        extra = {"IfNoneMatch": "*"} if if_absent else {}
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=data, **extra)
            return True
        except ClientError as err:
            if if_absent and _code(err) in _TAKEN:
                return False
            raise _fail(uri, err) from None
        except BotoCoreError as err:
            raise _fail(uri, err) from None

    def copy(self, src_uri: str, dst_uri: str, *, if_absent: bool = False) -> bool:
        """Server-side copy of one object. S3's CopyObject takes no If-None-Match, so with if_absent the
        destination is checked first: callers only copy into names they own (a claimed version)."""
        src_bucket, src_key = _bucket_key(src_uri)
        bucket, key = _bucket_key(dst_uri)
        if if_absent and self._head(dst_uri) is not None:
            return False
        try:
            self.client.copy(
                {"Bucket": src_bucket, "Key": src_key},
                bucket,
                key,
                ExtraArgs=_CHECKSUM,
                Config=_COPY_TRANSFER,
            )
            return True
        except (ClientError, BotoCoreError) as err:
            raise _fail(dst_uri, err) from None

    def delete_tree(self, uri: str) -> None:
        bucket, key = _bucket_key(uri)
        keys = [o["Key"] for o in self._objects(uri, key_prefix(key))]
        if key and not key.endswith("/"):
            keys.append(key)
        try:
            for start in range(0, len(keys), 1000):
                batch = [{"Key": k} for k in keys[start : start + 1000]]
                self.client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        except (ClientError, BotoCoreError) as err:
            raise _fail(uri, err) from None
