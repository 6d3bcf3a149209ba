"""Missing cloud credentials are one clear line, never a traceback; no request leaves loopback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _without_credentials(tmp_path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "GOOGLE_", "STORAGE_EMULATOR", "GCE_"))
    }
    env.update(
        {
            "HOME": str(tmp_path),  # no ~/.config/gcloud, no ~/.aws
            "AWS_CONFIG_FILE": str(tmp_path / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_EC2_METADATA_DISABLED": "true",
            # google-auth probes a metadata server; keep that probe on a closed loopback port.
            "GCE_METADATA_HOST": "127.0.0.1:9",
            "GCE_METADATA_IP": "127.0.0.1:9",
        }
    )
    return env


@pytest.mark.parametrize(
    ("uri", "complaint"),
    [
        ("gs://bucket/models/m", "no Google Cloud credentials found"),
        ("s3://bucket/models/m", "no AWS credentials"),
    ],
)
def test_missing_credentials_are_one_line(tmp_path, uri, complaint):
    proc = subprocess.run(
        [sys.executable, "-m", "kfp_tfserving.pipelines.cli", "versions", uri],
        capture_output=True,
        text=True,
        env=_without_credentials(tmp_path),
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and complaint in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
