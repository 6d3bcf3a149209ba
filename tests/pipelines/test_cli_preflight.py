"""Mistakes `kfp-tfserving run` reports at once, before any step runs, and `versions` on a wrong path."""

from __future__ import annotations

import pytest
from conftest import published_versions, run_cli


@pytest.mark.parametrize(
    ("base_suffix", "extra", "complaint"),
    [
        ("ftp://host/models/m", [], "unsupported URI scheme 'ftp://'"),
        ("https://host/models/m", [], "http(s) is read-only"),
        (None, ["--format", "onnx"], "unknown format 'onnx'"),
    ],
    ids=["unknown-scheme", "read-only-base", "unknown-format"],
)
def test_run_refuses_before_starting_the_pipeline(tmp_path, keras2_h5, base_suffix, extra, complaint):
    base = base_suffix or str(tmp_path / "serving" / "m")
    proc = run_cli("run", str(keras2_h5), "--base-path", base, *extra)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and complaint in lines[0]
    assert "full log" not in lines[0]  # refused by the CLI itself: no pipeline ran
    assert published_versions(tmp_path / "serving" / "m") == []


def test_versions_of_a_missing_base_path_is_an_error_and_of_an_empty_one_says_so(tmp_path):
    missing = run_cli("versions", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no such directory" in missing.stderr
    (tmp_path / "empty").mkdir()
    empty = run_cli("versions", str(tmp_path / "empty"))
    assert empty.returncode == 0 and "no published versions" in empty.stdout
