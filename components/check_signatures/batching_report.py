"""The batching sweep in the step's Markdown report: a table and a small inline SVG chart."""

from __future__ import annotations

import base64
import math
from typing import Any

_W, _H, _PAD = 420, 180, 36


def _svg(points: list[dict[str, Any]], chosen: int) -> str:
    """Throughput (bars) per batch size on a log-2 axis, the chosen size highlighted; latency as a line."""
    top_tp = max(p["throughput"] for p in points) or 1
    top_lat = max(p["latency_ms"] for p in points) or 1
    step = (_W - 2 * _PAD) / max(1, len(points))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" font-family="sans-serif" '
        f'font-size="10"><rect width="{_W}" height="{_H}" fill="white"/>'
    ]
    line = []
    for i, p in enumerate(points):
        x = _PAD + i * step
        h = (_H - 2 * _PAD) * p["throughput"] / top_tp
        colour = "#d9822b" if p["batch"] == chosen else "#4a7ab0"
        parts.append(
            f'<rect x="{x + step * 0.15:.1f}" y="{_H - _PAD - h:.1f}" width="{step * 0.7:.1f}" '
            f'height="{h:.1f}" fill="{colour}"/>'
        )
        parts.append(
            f'<text x="{x + step / 2:.1f}" y="{_H - _PAD + 12}" text-anchor="middle">{p["batch"]}</text>'
        )
        y = _H - _PAD - (_H - 2 * _PAD) * p["latency_ms"] / top_lat
        line.append(f"{x + step / 2:.1f},{y:.1f}")
    parts.append(f'<polyline points="{" ".join(line)}" fill="none" stroke="#b03a2e" stroke-width="1.5"/>')
    parts.append(
        f'<text x="{_PAD}" y="14">bars: examples/s (max {top_tp:,.0f}); line: latency (max {top_lat:.2f} ms); '
        f"orange: max_batch_size</text>"
    )
    parts.append(f'<text x="{_W / 2}" y="{_H - 6}" text-anchor="middle">batch size</text></svg>')
    return "".join(parts)


def batching_markdown(batching: dict[str, Any]) -> list[str]:
    """Lines of the report's batching section."""
    lines = ["", "## Batching (measured through the serving oracle)", ""]
    if "skipped" in batching:
        return [*lines, f"No batching_params.pbtxt written: {batching['skipped']}."]
    params = batching["parameters"]
    chosen = params["max_batch_size"]
    lines += ["| batch | latency (ms) | examples/s | |", "|---|---|---|---|"]
    for p in batching["points"]:
        mark = "**max_batch_size**" if p["batch"] == chosen else ""
        lines.append(f"| {p['batch']} | {p['latency_ms']:.3f} | {p['throughput']:,.0f} | {mark} |")
    chart = base64.b64encode(_svg(batching["points"], chosen).encode()).decode()
    gain = (
        batching["throughput_chosen"] / batching["throughput_batch_1"]
        if batching["throughput_batch_1"]
        else math.nan
    )
    lines += [
        "",
        f"![throughput and latency by batch size](data:image/svg+xml;base64,{chart})",
        "",
        f"`{batching['file']}` written into the version ({gain:.1f}× the batch-1 throughput at {chosen}; "
        f"{batching['serving_cpus']} serving CPUs):",
        "",
        "```",
        *(f"{k}: {v}" for k, v in params.items()),
        "```",
        "",
        "TF Serving uses it when started with `--enable_batching --enable_per_model_batching_parameters`.",
    ]
    return lines
