"""Hostile endpoints and secrets: a stalled or closed server is a bounded, one-line failure, and no
password, token or authorization header reaches a line the user or a log sees."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import one_error_line, run_cli
from loopback_http import LoopbackServer, QuietHandler

from kfp_tfserving.components.common.errors import StorageError, UserError, reports_errors
from kfp_tfserving.components.common.redaction import redact
from kfp_tfserving.components.common.storage.base import DEADLINE_ENV
from kfp_tfserving.components.common.tfenv import QUIET_ENV
from kfp_tfserving.components.load_model.loader import load_source

# ---- secrets and bounded waits (2, 6) -----------------------------------------------------------------


class _Forbidden(QuietHandler):
    def do_HEAD(self) -> None:
        self.send_response(403)
        self.end_headers()

    do_GET = do_HEAD


@pytest.mark.slow
def test_a_password_in_the_source_url_is_never_printed_or_logged(tmp_path):
    with LoopbackServer(_Forbidden) as server:
        work = tmp_path / "work"
        work.mkdir()
        url = f"http://deploy:S3CRET-PW@127.0.0.1:{server.port}/model.h5?token=T0KEN&x=1"
        (tmp_path / "tmp").mkdir()
        proc = subprocess.run(
            [sys.executable, "-m", "kfp_tfserving.pipelines.cli", "run", url, "--base-path", "s/m"],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=work,
            env={**os.environ, **QUIET_ENV, "TMPDIR": str(tmp_path / "tmp")},
        )
    line = one_error_line(proc)
    assert "access denied (HTTP 403" in line and "http://***@127.0.0.1" in line and "token=***" in line
    logs = [p.read_text() for p in (tmp_path / "tmp").rglob("*") if p.is_file()]
    assert logs, "run.log is kept after a failure"
    for text in [proc.stdout, proc.stderr, *logs]:
        assert "S3CRET-PW" not in text and "T0KEN" not in text
    assert not (work / "s").exists()


def test_a_stalled_http_server_times_out_within_the_deadline(tmp_path, silent_port, monkeypatch):
    monkeypatch.setenv(DEADLINE_ENV, "3")
    uri = f"http://127.0.0.1:{silent_port}/model.h5"
    with pytest.raises(StorageError, match=r"model.h5: timed out after 3 s without an answer"):
        load_source(uri, tmp_path / "artifact", {})


def test_the_load_steps_read_deadline_parameter_bounds_the_wait(tmp_path, silent_port, monkeypatch):
    monkeypatch.delenv(DEADLINE_ENV, raising=False)  # the pipeline parameter alone, as on a cluster
    uri = f"http://127.0.0.1:{silent_port}/model.h5"
    with pytest.raises(StorageError, match=r"model.h5: timed out after 2 s without an answer"):
        load_source(uri, tmp_path / "artifact", {}, read_deadline=2)
    assert DEADLINE_ENV not in os.environ  # the step's setting does not outlive the read


def test_run_against_a_stalled_server_says_timed_out(tmp_path, silent_port):
    work = tmp_path / "work"
    work.mkdir()
    uri = f"http://127.0.0.1:{silent_port}/model.h5"
    proc = run_cli("run", uri, "--base-path", str(work / "m"), "--read-deadline", "3", timeout=120)
    assert "timed out after 3 s" in one_error_line(proc)
    assert not (work / "m").exists()


@pytest.mark.parametrize("scheme", ["http", "gs", "s3"])
def test_a_closed_endpoint_says_connection_refused(tmp_path, closed_port, monkeypatch, scheme):
    endpoint = f"http://127.0.0.1:{closed_port}"
    monkeypatch.setenv(DEADLINE_ENV, "5")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    for key, value in {
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    uri = {
        "http": f"{endpoint}/m.h5?X-Amz-Signature=SIGNED",
        "gs": "gs://bucket/m.h5",
        "s3": "s3://bucket/m.h5",
    }[scheme]
    with pytest.raises(StorageError) as err:
        load_source(uri, tmp_path / "artifact", {})
    assert "connection refused" in err.value.one_line()
    assert "SIGNED" not in err.value.one_line()


def test_redaction_covers_userinfo_query_tokens_and_authorization_headers():
    text = (
        "https://user:pw@h/p?X-Amz-Signature=abc&sig=def&token=ghi&keep=1 "
        "{'Authorization': 'Bearer ya29.tok'} Authorization: Basic dXNlcjpw"
    )
    out = redact(text)
    for secret in ("pw@", "abc", "def", "ghi", "ya29.tok", "dXNlcjpw"):
        assert secret not in out
    assert "keep=1" in out and "https://***@h/p" in out
    assert UserError("gs error: Authorization: Bearer SECRET").one_line() == "gs error: Authorization: ***"


def test_gcs_and_s3_error_lines_are_redacted():
    from botocore.exceptions import ClientError
    from google.api_core import exceptions as gexc

    from kfp_tfserving.components.common.storage import gcs, s3

    forbidden = gexc.Forbidden("denied for https://storage/x?X-Goog-Signature=SIGNED")
    assert "SIGNED" not in gcs._fail("gs://b/k?token=TOK", forbidden).one_line()
    assert "TOK" not in gcs._fail("gs://b/k?token=TOK", forbidden).one_line()
    denied = ClientError({"Error": {"Code": "AccessDenied"}}, "GetObject")
    assert "TOK" not in s3._fail("s3://b/k?sig=TOK", denied).one_line()


def test_a_bug_says_so_and_where_the_traceback_is(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    tempfile.tempdir = None

    @reports_errors
    def step():
        raise KeyError("internal")

    try:
        with pytest.raises(SystemExit):
            step()
    finally:
        tempfile.tempdir = None
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "a bug in kfp-tfserving: KeyError" in line and "unexpected" not in line
    written = Path(line.rsplit("traceback in ", 1)[1])
    assert written.parent == tmp_path and "raise KeyError" in written.read_text()
