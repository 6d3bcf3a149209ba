"""TensorFlow's own `saved_model_cli run` on a published version: the proof a user runs by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np


def saved_model_cli_run(
    version_dir: Path, input_name: str, x: np.ndarray, tmp_path: Path
) -> dict[str, np.ndarray]:
    """Feed `x` to serving_default's `input_name`; every output saved_model_cli wrote, by output name."""
    np.save(tmp_path / "x.npy", x)
    outdir = tmp_path / "answers"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tensorflow.python.tools.saved_model_cli",
            "run",
            "--dir",
            str(version_dir),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--inputs",
            f"{input_name}={tmp_path / 'x.npy'}",
            "--outdir",
            str(outdir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {p.stem: np.load(p) for p in outdir.glob("*.npy")}
