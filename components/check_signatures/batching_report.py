"""The batching measurement in the step's Markdown report and the terminal: tables and small inline SVG charts."""

from __future__ import annotations

import base64
from typing import Any

_W, _H, _PAD = 420, 180, 36


def _svg_open(title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" font-family="sans-serif" '
        f'font-size="10"><rect width="{_W}" height="{_H}" fill="white"/><text x="{_PAD}" y="14">{title}</text>'
    ]


def sweep_svg(points: list[dict[str, Any]], chosen: int) -> str:
    """Examples per CPU-second (bars, with the spread as whiskers) per batch size, the chosen size orange."""
    top = max(p["throughput"] * (1 + p["spread"]) for p in points) or 1
    step = (_W - 2 * _PAD) / max(1, len(points))
    scale = (_H - 2 * _PAD) / top
    parts = _svg_open(f"examples per CPU-second by batch size (max {top:,.0f}); orange: max_batch_size")
    for i, p in enumerate(points):
        x, h = _PAD + i * step, p["throughput"] * scale
        colour = "#d9822b" if p["batch"] == chosen else "#4a7ab0"
        parts.append(
            f'<rect x="{x + step * 0.15:.1f}" y="{_H - _PAD - h:.1f}" width="{step * 0.7:.1f}" '
            f'height="{h:.1f}" fill="{colour}"/>'
        )
        lo, hi = p["throughput"] * (1 - p["spread"]) * scale, p["throughput"] * (1 + p["spread"]) * scale
        mid = x + step / 2
        parts.append(
            f'<line x1="{mid:.1f}" x2="{mid:.1f}" y1="{_H - _PAD - lo:.1f}" y2="{_H - _PAD - hi:.1f}" '
            f'stroke="black"/>'
        )
        parts.append(f'<text x="{mid:.1f}" y="{_H - _PAD + 12}" text-anchor="middle">{p["batch"]}</text>')
    parts.append(f'<text x="{_W / 2}" y="{_H - 6}" text-anchor="middle">batch size</text></svg>')
    return "".join(parts)


def load_svg(load: dict[str, Any]) -> str:
    """Requests/s (bars) and p50/p99 latency of the model alone and behind the batch scheduler."""
    sides = [("unbatched", "#4a7ab0"), ("batched", "#d9822b")]
    top_tp = max(load[s]["throughput"] for s, _ in sides) or 1
    top_ms = max(load[s]["p99_ms"] for s, _ in sides) or 1
    parts = _svg_open(f"{load['clients']} concurrent clients: requests/s (left), p50 / p99 ms (right)")
    half = (_W - 2 * _PAD) / 2
    for i, (side, colour) in enumerate(sides):
        h = (_H - 2 * _PAD) * load[side]["throughput"] / top_tp
        x = _PAD + i * half / 2
        parts.append(
            f'<rect x="{x + 8:.1f}" y="{_H - _PAD - h:.1f}" width="{half / 2 - 16:.1f}" height="{h:.1f}" '
            f'fill="{colour}"/><text x="{x + half / 4:.1f}" y="{_H - _PAD + 12}" text-anchor="middle">'
            f"{side} {load[side]['throughput']:,.0f}</text>"
        )
        for j, key in enumerate(("p50_ms", "p99_ms")):
            h = (_H - 2 * _PAD) * load[side][key] / top_ms
            x = _PAD + half + (2 * j + i) * half / 4
            parts.append(
                f'<rect x="{x + 4:.1f}" y="{_H - _PAD - h:.1f}" width="{half / 4 - 8:.1f}" height="{h:.1f}" '
                f'fill="{colour}"/><text x="{x + half / 8:.1f}" y="{_H - _PAD + 12}" text-anchor="middle">'
                f"{key[:3]} {load[side][key]:.1f}</text>"
            )
    return "".join(parts) + "</svg>"


def _image(alt: str, svg: str) -> str:
    return f"![{alt}](data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()})"


def sweep_rows(batching: dict[str, Any]) -> list[tuple[str, ...]]:
    chosen = batching.get("parameters", {}).get("max_batch_size")
    # Only a published size is the max_batch_size; one the load test turned down was the sweep's choice.
    mark = "max_batch_size" if batching.get("publish") else "sweep's choice"
    return [
        (
            str(p["batch"]),
            f"{p['latency_ms']:.2f}",
            f"{p['cpu_ms']:.2f}",
            f"±{p['spread']:.0%}",
            f"{p['throughput']:,.0f}",
            mark if p["batch"] == chosen else "",
        )
        for p in batching["points"]
    ]


SWEEP_COLUMNS = ("batch", "latency ms", "CPU ms", "spread", "examples/CPU-s", "")
LOAD_COLUMNS = ("", "requests/s", "p50 ms", "p99 ms")


def load_rows(load: dict[str, Any]) -> list[tuple[str, ...]]:
    return [
        (
            side,
            f"{load[side]['throughput']:,.0f}",
            f"{load[side]['p50_ms']:.2f}",
            f"{load[side]['p99_ms']:.2f}",
        )
        for side in ("unbatched", "batched")
    ]


def verdict(batching: dict[str, Any]) -> str:
    """One paragraph: what was written, or why nothing was."""
    if "skipped" in batching:
        return f"No batching_params.pbtxt written: {batching['skipped']}."
    load = batching.get("load_test", {})
    said = load.get("verdict") or batching["decision"]
    if batching.get("file"):
        untested = f" ({load['skipped']})" if "skipped" in load else ""
        return f"`{batching['file']}` written: {said}{untested}."
    if batching.get("publish"):  # measured, not written (`check --batching`)
        return f"{said[0].upper()}{said[1:]}; `kfp-tfserving run` would write `batching_params.pbtxt`."
    return f"No batching_params.pbtxt: {said}."


def _table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    return [
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(f"**{c}**" if c == "max_batch_size" else c for c in row) + " |" for row in rows),
    ]


def batching_markdown(batching: dict[str, Any]) -> list[str]:
    """Lines of the report's batching section."""
    lines = ["", "## Batching (measured through the serving oracle)", ""]
    if "skipped" in batching:
        return [*lines, verdict(batching)]
    chosen = batching.get("parameters", {}).get("max_batch_size", 0)
    rounds = max((p["rounds"] for p in batching["points"]), default=0)
    lines += [
        f"Sweep: {rounds} interleaved rounds per size; median per size, spread = half the interquartile "
        f"range; {batching['serving_cpus']} serving CPUs.",
        "",
        *_table(SWEEP_COLUMNS, sweep_rows(batching)),
        "",
        _image("examples per CPU-second by batch size", sweep_svg(batching["points"], chosen)),
        "",
        f"Decision: {batching['decision']}.",
    ]
    load = batching.get("load_test", {})
    if "verdict" in load:
        lines += [
            "",
            f"Load test: {load['clients']} concurrent single-example clients, {load['pairs']} alternating "
            "pairs, the model alone against the model behind TensorFlow's batch scheduler (BatchFunction, "
            "the scheduler of `--enable_batching`) with the parameters below.",
            "",
            *_table(LOAD_COLUMNS, load_rows(load)),
            "",
            _image("throughput and latency under concurrent load", load_svg(load)),
        ]
    lines += ["", verdict(batching)]
    if "parameters" in batching and batching.get("publish"):
        lines += [
            "",
            "```",
            *(f"{k}: {v}" for k, v in batching["parameters"].items()),
            "```",
            "",
            "TF Serving uses it when started with `--enable_batching --enable_per_model_batching_parameters`.",
        ]
    return lines


def metrics_of(batching: dict[str, Any]) -> dict[str, float]:
    """The step's Metrics: the sweep's figures and the load test's, numbers only."""
    out: dict[str, float] = {}
    for key in ("throughput_batch_1", "throughput_chosen"):
        if key in batching:
            out[key] = round(batching[key], 1)
    out["max_batch_size"] = batching["parameters"]["max_batch_size"] if batching.get("publish") else 0
    load = batching.get("load_test", {})
    if "verdict" in load:
        for side in ("unbatched", "batched"):
            out[f"load_{side}_requests_per_s"] = round(load[side]["throughput"], 1)
            out[f"load_{side}_p50_ms"] = round(load[side]["p50_ms"], 2)
            out[f"load_{side}_p99_ms"] = round(load[side]["p99_ms"], 2)
    return out


def print_batching(batching: dict[str, Any]) -> None:
    """The same section in the terminal, with rich."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if "skipped" not in batching:
        sweep = Table(title="Batching sweep (serving oracle)")
        for column in SWEEP_COLUMNS:
            sweep.add_column(column)
        for row in sweep_rows(batching):
            sweep.add_row(*row)
        console.print(sweep)
        console.print(f"Decision: {batching['decision']}.")
        load = batching.get("load_test", {})
        if "verdict" in load:
            table = Table(title=f"Load test: {load['clients']} concurrent single-example clients")
            for column in LOAD_COLUMNS:
                table.add_column(column)
            for row in load_rows(load):
                table.add_row(*row)
            console.print(table)
    console.print(verdict(batching).replace("`", ""))
    if batching.get("publish") and "parameters" in batching:
        console.print("\n".join(f"  {k}: {v}" for k, v in batching["parameters"].items()))
