"""Read-only http(s):// storage: a model file (often an archive) downloaded by streaming, with retries.

Credentials come the usual `requests` ways: `user:password@host` in the URL, or ~/.netrc; a private CA
through $REQUESTS_CA_BUNDLE.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from kfp_tfserving.components.common.errors import StorageError, TransientStorageError
from kfp_tfserving.components.common.storage.base import (
    Deadline,
    ProgressCallback,
    Storage,
    is_refused,
    stall_timeout,
    stalled,
)

RETRIES_ENV = "KFP_TFSERVING_HTTP_RETRIES"
_CONNECT_TIMEOUT = 15
_CHUNK = 1024 * 1024
_NOT_FOUND = {404, 410}


def _retries() -> int:
    raw = os.environ.get(RETRIES_ENV, "").strip()
    return int(raw) if raw.isdigit() else 5


def url_file_name(uri: str) -> str:
    """The last path segment of a URL, without query or fragment: what the download is called."""
    return PurePosixPath(unquote(urlsplit(uri).path).rstrip("/")).name


def _session() -> requests.Session:
    retry = Retry(
        total=_retries(),
        connect=0,  # timeouts are retried by HttpStorage._request, within the deadline
        read=0,
        backoff_factor=0.5,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"HEAD", "GET"}),
        respect_retry_after_header=True,
        raise_on_status=False,  # the last response is reported with its own status below
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _status_error(uri: str, response: requests.Response) -> StorageError:
    status = f"HTTP {response.status_code} {response.reason or ''}".strip()
    if response.status_code in _NOT_FOUND:
        return StorageError(f"{uri}: not found ({status})", "check the URL")
    if response.status_code in (401, 403):
        return StorageError(
            f"{uri}: access denied ({status})",
            "give credentials as user:password@host in the URL or in ~/.netrc, or use a public URL",
        )
    if response.status_code == 429 or response.status_code >= 500:
        return TransientStorageError(f"{uri}: download failed ({status})", "retry later")
    return StorageError(f"{uri}: download failed ({status})", "check the URL")


class HttpStorage(Storage):
    """One URL is one file: there are no directories over http."""

    scheme = "http"

    def __init__(self) -> None:
        self._session = _session()

    def _request(
        self, method: str, uri: str, deadline: Deadline | None = None, **kwargs
    ) -> requests.Response:
        """One request, retried on timeouts while the deadline (per call unless given) leaves time."""
        deadline = deadline or Deadline()
        while True:
            left = deadline.remaining()
            if left <= 0:
                raise deadline.timed_out(uri)
            timeout = (min(_CONNECT_TIMEOUT, left), min(stall_timeout(), left))
            try:
                return self._session.request(method, uri, timeout=timeout, allow_redirects=True, **kwargs)
            except requests.exceptions.SSLError as err:
                raise StorageError(
                    f"{uri}: TLS verification failed ({type(err).__name__})",
                    "for a private CA set $REQUESTS_CA_BUNDLE to its certificate bundle",
                ) from None
            except requests.exceptions.ReadTimeout:
                # Connected, and nothing came back: a stalled server is not retried.
                if deadline.expired():
                    raise deadline.timed_out(uri) from None
                raise stalled(uri, "no answer to the request") from None
            except requests.exceptions.Timeout:
                continue  # connecting timed out: the loop's deadline check reports it once no time is left
            except requests.exceptions.RequestException as err:
                if deadline.expired():
                    raise deadline.timed_out(uri) from None
                if "Read timed out" in str(err):  # urllib3's retry wrapper turns it into a ConnectionError
                    raise stalled(uri, "no answer to the request") from None
                if is_refused(err):
                    raise TransientStorageError(
                        f"{uri}: cannot connect (connection refused)",
                        "check the host and port, and that the server runs",
                    ) from None
                raise TransientStorageError(
                    f"{uri}: cannot connect ({type(err).__name__})", "check the URL and the network"
                ) from None

    def _head(self, uri: str) -> requests.Response | None:
        """The HEAD response; None when HEAD says nothing about GET.

        Some servers do not implement HEAD, and a presigned S3/GCS URL is signed for GET only, so its HEAD
        is refused (400/403) while the GET works.
        """
        response = self._request("HEAD", uri)
        response.close()
        return None if response.status_code in (400, 403, 405, 501) else response

    def exists(self, uri: str) -> bool:
        response = self._head(uri)
        if response is None:  # a Response is falsy when not ok: compare with None, never `or`
            response = self._request("GET", uri, stream=True)
            response.close()
        if response.status_code in _NOT_FOUND:
            return False
        if not response.ok:
            raise _status_error(uri, response)
        return True

    def is_dir(self, uri: str) -> bool:
        return False

    def list_dir(self, uri: str) -> list[str]:
        return []

    def walk_files(self, uri: str) -> list[tuple[str, int]]:
        return [(url_file_name(uri) or "download", self.total_size(uri))]

    def total_size(self, uri: str) -> int:
        """Content-Length, or 0 when the server does not say (chunked or compressed responses)."""
        response = self._head(uri)
        if response is None or not response.ok or response.headers.get("Content-Encoding"):
            return 0
        length = response.headers.get("Content-Length", "")
        return int(length) if length.isdigit() else 0

    def download(self, uri: str, dest: Path, progress: ProgressCallback | None = None) -> Path:
        """Stream to `dest`; a connection dropped mid-body resumes with a Range request when it can."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        done = 0
        expected: int | None = None
        attempts = _retries() + 1
        deadline = Deadline()  # restarted by every chunk: a download that keeps moving is never cut
        with open(dest, "wb") as out:
            for attempt in range(attempts):
                headers = {"Range": f"bytes={done}-"} if done else {}
                response = self._request("GET", uri, deadline, stream=True, headers=headers)
                with response:
                    if not response.ok:
                        raise _status_error(uri, response)
                    if done and response.status_code != 206:  # no resume support: start over
                        out.seek(0)
                        out.truncate()
                        done = 0
                    if expected is None and "Content-Encoding" not in response.headers:
                        length = response.headers.get("Content-Length", "")
                        expected = int(length) if length.isdigit() else None
                    try:
                        for chunk in response.iter_content(_CHUNK):
                            out.write(chunk)
                            deadline.restart()
                            done += len(chunk)
                            if progress:
                                progress(len(chunk))
                    except requests.exceptions.RequestException as err:
                        if deadline.expired():
                            raise deadline.timed_out(uri) from None
                        if "Read timed out" in str(err):  # mid-body: the body stopped coming
                            raise stalled(uri, "mid-download") from None
                        if attempt + 1 == attempts:
                            raise TransientStorageError(
                                f"{uri}: the connection kept dropping ({type(err).__name__})",
                                "retry later",
                            ) from None
                        continue
                if expected is not None and done < expected:
                    raise TransientStorageError(
                        f"{uri}: download truncated ({done} of {expected} bytes)", "retry later"
                    )
                return dest
        return dest

    def read_bytes(self, uri: str) -> bytes:
        response = self._request("GET", uri)
        if not response.ok:
            raise _status_error(uri, response)
        return response.content

    def _read_only(self, uri: str) -> StorageError:
        return StorageError(
            f"{uri}: http(s) sources are read-only", "publish to a local path, a PVC, gs:// or s3://"
        )

    def upload_file(self, local: Path, uri: str, *, if_absent: bool = False) -> bool:
        raise self._read_only(uri)

    def write_bytes(self, uri: str, data: bytes, *, if_absent: bool = False) -> bool:
        raise self._read_only(uri)

    def delete_tree(self, uri: str) -> None:
        raise self._read_only(uri)
