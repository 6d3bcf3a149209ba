"""3. `kfp-tfserving run` on a large Keras model vs a bare one-process load + save + copy script."""

from __future__ import annotations

import json
import re
import shutil
import sys
from datetime import datetime
from pathlib import Path

from benchmarks.measure import Paired, Series, check, run_process

CLI = [sys.executable, "-m", "kfp_tfserving.pipelines.cli"]

# The same verified work in one process: load, export, reload as TF Serving would, compare, copy durably.
# The export is the product's (export_keras: Keras 3's ExportArchive with the endpoint's variables, each
# saved once); `model.export` tracks the model as well and saves every weight twice, so a reference using
# it wrote, restored and copied twice the bytes (955 MB for this 500 MB model). The copy is fsynced file
# by file, as durable as the push step's.
BARE_SCRIPT = """
import os, shutil, sys
from pathlib import Path
import numpy as np, keras
from kfp_tfserving.components.common import formats  # before serving_oracle (import cycle)
from kfp_tfserving.components.common.formats.keras_export import export_keras
from kfp_tfserving.components.common.serving_oracle import load_served
src, scratch, dest = sys.argv[1], sys.argv[2], sys.argv[3]
model = keras.saving.load_model(src, compile=False)
export_keras(model, Path(scratch))
x = np.random.default_rng(0).random((2, *model.inputs[0].shape[1:]), dtype=np.float32)
with load_served(scratch) as served:
    name = served.signatures["serving_default"].inputs[0].name
    got = next(iter(served.predict({name: x}).values()))
np.testing.assert_allclose(got, model.predict_on_batch(x), atol=1e-4, rtol=1e-4)
shutil.copytree(scratch, dest)
for path in Path(dest).rglob("*"):
    if path.is_file():
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
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


_CHECK_PHASES = re.compile(r"check phases \(s\): (.*)$")


def check_phases(log_text: str) -> dict[str, float]:
    """static checks / runtime checks / batching sweep seconds of the check step's fresh process, from the
    line the check step logs (check_step.check_in_fresh_process)."""
    for raw in log_text.splitlines():
        match = _CHECK_PHASES.search(_ANSI.sub("", raw).strip())
        if match:
            return {
                name: float(seconds)
                for name, seconds in (p.rsplit(" ", 1) for p in match.group(1).split(", "))
            }
    return {}


def _median_of(key: str, rows: list[dict[str, float]]) -> float | None:
    values = [row[key] for row in rows if key in row]
    return Series(values).median if values else None


def end_to_end(model: Path, scratch: Path, pairs: int) -> dict:
    steps: list[dict[str, float]] = []
    phases: list[dict[str, float]] = []
    checks: list[dict[str, float]] = []
    counter = iter(range(10**6))

    def ours() -> float:
        i = next(counter)
        root = scratch / f"root{i}"
        run = check(
            run_process([*CLI, "run", str(model), "--base-path", str(scratch / f"base{i}/m"), "--pipeline-root",
                         str(root), "--json"]),
            "kfp-tfserving run",
        )  # fmt: skip
        steps.append(step_seconds((root / "run.log").read_text()))
        phases.append(export_phases(root))
        checks.append(check_phases((root / "run.log").read_text()))
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(scratch / f"base{i}", ignore_errors=True)
        return run.seconds

    def reference() -> float:
        i = next(counter)
        argv = [
            sys.executable,
            "-c",
            BARE_SCRIPT,
            str(model),
            str(scratch / f"bare{i}"),
            str(scratch / f"dest{i}"),
        ]
        seconds = check(run_process(argv), "one-process reference").seconds
        shutil.rmtree(scratch / f"bare{i}", ignore_errors=True)
        shutil.rmtree(scratch / f"dest{i}", ignore_errors=True)
        return seconds

    paired = Paired().run(ours, reference, pairs)
    python_start = Series([run_process([sys.executable, "-c", "pass"]).seconds for _ in range(pairs)])
    tf_import = Series(
        [run_process([sys.executable, "-c", "import tensorflow"]).seconds for _ in range(pairs)]
    )
    return {
        **paired.summary("<= 1.3", "time"),
        "reference": "one process: load, export_keras, reload through the serving oracle, compare, fsynced copy",
        "breakdown_median_seconds": {
            "python_process_start": python_start.median,
            "tensorflow_import": tf_import.median,
            **{f"step {k}": _median_of(k, steps) for k in sorted({k for s in steps for k in s})},
            **{f"export: {k}": _median_of(k, phases) for k in sorted({k for p in phases for k in p})},
            **{f"check: {k}": _median_of(k, checks) for k in sorted({k for c in checks for k in c})},
        },
    }
