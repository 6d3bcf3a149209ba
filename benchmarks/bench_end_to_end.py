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


# The pipeline's default adds work the reference does not do: the batching measurement (issue 23: sweep and
# load test, a 15 s budget). The same-work row runs without it; the default row is information.
VARIANTS = {"same_work": ["--no-batching-params"], "default": []}


def end_to_end(model: Path, scratch: Path, pairs: int) -> dict:
    """`kfp-tfserving run` without and with the batching measurement, and the reference, once per round."""
    steps: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    phases: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    checks: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    counter = iter(range(10**6))

    def ours(variant: str):
        def run_once() -> float:
            i = next(counter)
            root = scratch / f"root{i}"
            run = check(
                run_process([*CLI, "run", str(model), "--base-path", str(scratch / f"base{i}/m"),
                             "--pipeline-root", str(root), "--json", *VARIANTS[variant]]),
                "kfp-tfserving run",
            )  # fmt: skip
            log = (root / "run.log").read_text()
            steps[variant].append(step_seconds(log))
            phases[variant].append(export_phases(root))
            checks[variant].append(check_phases(log))
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(scratch / f"base{i}", ignore_errors=True)
            return run.seconds

        return run_once

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

    # The reference takes the first slot, so each variant's ratio is against the reference of its round.
    rounds = Paired.against(reference, {v: ours(v) for v in VARIANTS}, pairs)
    python_start = Series([run_process([sys.executable, "-c", "pass"]).seconds for _ in range(pairs)])
    tf_import = Series(
        [run_process([sys.executable, "-c", "import tensorflow"]).seconds for _ in range(pairs)]
    )
    out: dict = {"reference": "one process: load, export_keras, reload through the serving oracle, compare, "
                 "fsynced copy"}  # fmt: skip
    for variant, goal in (("same_work", "<= 1.5"), ("default", "information only")):
        p = rounds[variant]  # ours = the reference's times, ref = this variant's: swap them
        out[variant] = Paired(p.ref, p.ours, Series([1 / r for r in p.ratios.values])).summary(goal, "time")
    same, default = steps["same_work"], checks["default"]
    out["breakdown_median_seconds"] = {
        "python_process_start": python_start.median,
        "tensorflow_import": tf_import.median,
        **{f"step {k}": _median_of(k, same) for k in sorted({k for s in same for k in s})},
        **{
            f"export: {k}": _median_of(k, phases["same_work"])
            for k in sorted({k for p in phases["same_work"] for k in p})
        },
        **{
            f"check: {k}": _median_of(k, checks["same_work"])
            for k in sorted({k for c in checks["same_work"] for k in c})
        },
        **{
            f"default run, check: {k}": _median_of(k, default)
            for k in sorted({k for c in default for k in c})
        },
        **{f"default run, step {k}": _median_of(k, steps["default"]) for k in ("check-signatures",)},
    }
    return out
