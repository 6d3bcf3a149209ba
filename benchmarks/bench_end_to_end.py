"""3. `kfp-tfserving run` on a large Keras model vs a bare one-process load + save + copy script."""

from __future__ import annotations

import json
import re
import shutil
import sys
from datetime import datetime
from pathlib import Path

from benchmarks.measure import Series, check, run_process

CLI = [sys.executable, "-m", "kfp_tfserving.pipelines.cli"]

BARE_SCRIPT = """
import os, shutil, sys
import keras, tensorflow as tf
src, scratch, dest = sys.argv[1], sys.argv[2], sys.argv[3]
model = keras.saving.load_model(src, compile=False)
spec = tf.TensorSpec(model.inputs[0].shape, model.inputs[0].dtype, name=model.inputs[0].name)
serve = tf.function(lambda x: {model.output_names[0]: model(x, training=False)}, input_signature=[spec])
module = tf.Module(); module.model = model
tf.saved_model.save(module, scratch, signatures={"serving_default": serve})
shutil.copytree(scratch, dest)
"""

_LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) - \w+ - (Executing task|Task) '([\w-]+)'")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def step_seconds(log_text: str) -> dict[str, float]:
    """Wall time of each pipeline step from kfp.local's own start/finish lines."""
    started: dict[str, datetime] = {}
    out: dict[str, float] = {}
    for raw in log_text.splitlines():
        match = _LINE.match(_ANSI.sub("", raw).strip())
        if not match:
            continue
        stamp = datetime.strptime(match.group(1)[:15], "%H:%M:%S.%f")
        if match.group(2) == "Executing task":
            started[match.group(3)] = stamp
        elif match.group(3) in started:
            out[match.group(3)] = (stamp - started[match.group(3)]).total_seconds()
    return out


def export_phases(pipeline_root: Path) -> dict[str, float]:
    """load / export / parity seconds the export step recorded in its artifact metadata."""
    for executor_output in pipeline_root.rglob("export-savedmodel/executor_output.json"):
        doc = json.loads(executor_output.read_text())
        for artifact in doc.get("artifacts", {}).get("exported_model", {}).get("artifacts", []):
            return artifact.get("metadata", {}).get("timings_seconds", {})
    return {}


def _median_of(key: str, rows: list[dict[str, float]]) -> float | None:
    values = [row[key] for row in rows if key in row]
    return Series(values).median if values else None


def end_to_end(model: Path, scratch: Path, runs: int) -> dict:
    ours, bare = Series(), Series()
    steps: list[dict[str, float]] = []
    phases: list[dict[str, float]] = []
    for i in range(runs):
        root = scratch / f"root{i}"
        run = check(
            run_process([*CLI, "run", str(model), "--base-path", str(scratch / f"base{i}/m"), "--pipeline-root",
                         str(root), "--json"]),
            "kfp-tfserving run",
        )  # fmt: skip
        ours.values.append(run.seconds)
        steps.append(step_seconds((root / "run.log").read_text()))
        phases.append(export_phases(root))
        bare_run = run_process(
            [
                sys.executable,
                "-c",
                BARE_SCRIPT,
                str(model),
                str(scratch / f"bare{i}"),
                str(scratch / f"bare_dest{i}"),
            ]
        )
        bare.values.append(check(bare_run, "bare script").seconds)
        for p in (root, scratch / f"base{i}", scratch / f"bare{i}", scratch / f"bare_dest{i}"):
            shutil.rmtree(p, ignore_errors=True)
    python_start = Series([run_process([sys.executable, "-c", "pass"]).seconds for _ in range(runs)])
    tf_import = Series(
        [run_process([sys.executable, "-c", "import tensorflow"]).seconds for _ in range(runs)]
    )
    return {
        "run_seconds": ours.summary(),
        "bare_script_seconds": bare.summary(),
        "ratio": ours.median / bare.median,
        "goal": "<= 1.5",
        "breakdown_median_seconds": {
            "python_process_start": python_start.median,
            "tensorflow_import": tf_import.median,
            **{f"step {k}": _median_of(k, steps) for k in sorted({k for s in steps for k in s})},
            **{f"export: {k}": _median_of(k, phases) for k in sorted({k for p in phases for k in p})},
        },
    }
