"""4. Peak RSS of a push step for growing models: files must stream, never sit whole in memory."""

from __future__ import annotations

import shutil
from pathlib import Path

from benchmarks.bench_publish import PUSH_STEP
from benchmarks.measure import Series, peak_rss


def push_memory(models: dict[int, Path], scratch: Path, runs: int) -> dict:
    rows = {}
    for megabytes, model in sorted(models.items()):
        series = Series()
        for i in range(runs):
            base = scratch / f"mem{megabytes}_{i}"
            series.values.append(peak_rss([*PUSH_STEP, str(model), str(base / "m")]) / 2**20)
            shutil.rmtree(base, ignore_errors=True)
        rows[f"{megabytes} MB"] = {"peak_rss_mb": series.summary()}
    medians = [row["peak_rss_mb"]["median"] for row in rows.values()]
    return {"by_model_size": rows, "growth_mb": max(medians) - min(medians), "goal": "growth < 200 MB"}
