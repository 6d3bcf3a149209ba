"""Remote reads on the clients' own clock: a read that receives nothing for the stall timeout fails with a
line saying so, a slow download that keeps moving is never cut, and a refused gs:// connection fails when
google-cloud-storage's retry policy gives up. Servers run on 127.0.0.1, started here; the stall timeout is
set short (the step's `stall_timeout`, default 60 s) so nothing waits for real."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest
from loopback_http import LoopbackServer, QuietHandler

from kfp_tfserving.components.common.errors import FormatError, TransientStorageError
from kfp_tfserving.components.load_model.loader import load_source

BODY = bytes(range(256)) * 4  # 1 KiB


class _Trickle(QuietHandler):
    """/slow: the body in 64-byte pieces every 0.3 s; /stuck: 100 bytes of it, then silence."""

    stop: threading.Event

    def _headers(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()

    def do_HEAD(self) -> None:
        self._headers()

    def do_GET(self) -> None:
        self._headers()
        if self.path.startswith("/stuck"):
            self.wfile.write(BODY[:100])
            self.wfile.flush()
            self.stop.wait(30)
            return
        for start in range(0, len(BODY), 64):
            self.wfile.write(BODY[start : start + 64])
            self.wfile.flush()
            time.sleep(0.3)


@pytest.fixture()
def trickle_server() -> Iterator[str]:
    stop = threading.Event()
    handler = type("Handler", (_Trickle,), {"stop": stop})
    with LoopbackServer(handler) as server:
        yield server.url
        stop.set()


def test_a_silent_http_server_fails_on_the_stall_timeout_not_the_deadline(tmp_path, silent_port):
    start = time.monotonic()
    with pytest.raises(TransientStorageError) as err:
        load_source(
            f"http://127.0.0.1:{silent_port}/m.h5", tmp_path / "a", {}, read_deadline=120, stall_timeout=1
        )
    assert "m.h5: the server sent nothing for 1 s" in err.value.one_line()
    assert time.monotonic() - start < 60  # not the 120 s deadline


def test_a_download_that_stops_midway_fails_on_the_stall_timeout(tmp_path, trickle_server):
    with pytest.raises(TransientStorageError) as err:
        load_source(f"{trickle_server}/stuck/m.h5", tmp_path / "a", {}, read_deadline=120, stall_timeout=1)
    line = err.value.one_line()
    assert "sent nothing for 1 s (mid-download): the read timed out" in line and "STALL_TIMEOUT" in line
    assert not (tmp_path / "a" / "m.h5").exists()


def test_a_slow_download_that_keeps_moving_is_never_cut(tmp_path, trickle_server):
    # 16 pieces 0.3 s apart: about 5 s in all, past both the 1 s stall timeout and the 2 s read deadline.
    meta: dict = {}
    with contextlib.suppress(FormatError):  # 1 KiB of bytes is no model; the download is what counts
        load_source(f"{trickle_server}/slow/m.bin", tmp_path / "a", meta, read_deadline=2, stall_timeout=1)
    assert (tmp_path / "a" / "m.bin").read_bytes() == BODY


def test_a_silent_gs_endpoint_fails_on_the_stall_timeout(tmp_path, silent_port, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{silent_port}")
    with pytest.raises(TransientStorageError) as err:
        load_source("gs://bucket/m.h5", tmp_path / "a", {}, read_deadline=120, stall_timeout=1)
    assert "gs://bucket/m.h5: the server sent nothing for 1 s (google-cloud-storage read timeout)" in (
        err.value.one_line()
    )


def test_a_refused_gs_endpoint_fails_when_the_clients_retry_policy_gives_up(
    tmp_path, closed_port, monkeypatch
):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{closed_port}")
    with pytest.raises(TransientStorageError) as err:
        load_source("gs://bucket/m.h5", tmp_path / "a", {}, read_deadline=3)
    assert "connection refused; google-cloud-storage's retry policy gave up after 3 s" in err.value.one_line()
