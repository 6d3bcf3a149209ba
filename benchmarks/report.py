"""Render benchmark results as a Markdown page: one row per measurement, one ratio column per pass."""

from __future__ import annotations

import re


def _verdict(value: float, goal: str) -> str:
    op, target = re.search(r"(>=|<=|<)\s*([\d.]+)", goal).groups()
    ok = {">=": value >= float(target), "<=": value <= float(target), "<": value < float(target)}[op]
    return "met" if ok else "**missed**"


def _t(summary: dict, unit: str) -> str:
    digits = 3 if unit == "ms" else 2
    return f"{summary['median']:.{digits}f} {unit}"


def _ratio(row: dict) -> str:
    r = row["ratio"]
    return f"{r['median']:.2f}× ({r['min']:.2f}–{r['max']:.2f}, {r['runs']} pairs)"


_STORES = {"publish_gcs": "GCS emulator", "publish_s3": "S3 (moto server)"}
_PLAIN = {"publish_gcs": "transfer-manager upload", "publish_s3": "boto3 `upload_file`"}


def _rows(p: dict) -> list[tuple[str, dict, str]]:
    """(label, paired summary, unit) of one pass."""
    out = []
    for size, row in p.get("publish_local", {}).items():
        out.append((f"1 · local push {size} vs `cp -r && sync` (throughput)", row, "s"))
        if size in p.get("publish_tfx", {}):
            out.append(
                (f"1 · local push {size} vs TFX Pusher `&& sync` (throughput)", p["publish_tfx"][size], "s")
            )
    for key, what in _STORES.items():
        if key in p:
            g = p[key]
            info = " — information only: moto copies in Python" if key == "publish_s3" else ""
            out.append((f"1 · {what} push {g['model_mb']} MB vs {_PLAIN[key]} (throughput){info}", g, "s"))
    for case, rows in p.get("latency", {}).items():
        for batch, row in rows.items():
            out.append(
                (f"2 · {case}: served export vs source, {batch.replace('_', ' ')} (latency)", row, "ms")
            )
    for case, rows in p.get("latency_c_api", {}).items():
        for batch, row in rows.items():
            label = f"2 · {case}: served through the C API vs the TF1 loader's Session callable"
            out.append((f"{label}, {batch.replace('_', ' ')} (latency)", row, "ms"))
    if "end_to_end" in p:
        e = p["end_to_end"]
        run = f"`kfp-tfserving run` {e['model_mb']} MB Keras"
        if "same_work" not in e:  # results written before the two variants
            out.append((f"3 · {run} vs one-process reference (time)", e, "s"))
        else:
            out.append((f"3 · {run} `--no-batching-params` vs one-process reference, same work (time)",
                        e["same_work"], "s"))  # fmt: skip
            out.append((f"3 · {run}, default (+ batching measurement, 15 s budget) vs the same reference "
                        "(time) — information only: work the reference does not do", e["default"], "s"))  # fmt: skip
    return out


def _phase_table(passes: list[dict], key: str, what: str) -> list[str]:
    lines = ["", f"## {what} push phases (median seconds; server on 127.0.0.1)", "",
             "| phase | " + " | ".join(f"pass {i + 1}" for i in range(len(passes))) + " |",
             "|---|" + "---|" * len(passes)]  # fmt: skip
    names = {"upload": "upload to staging (parallel, client-checksummed)", "promote": "server-side promote",
             "without_pb": "`N/` visible without saved_model.pb"}  # fmt: skip
    for phase, name in names.items():
        cells = [
            f"{pp[key]['phases_seconds'][phase]['median']:.2f}"
            if phase in pp.get(key, {}).get("phases_seconds", {})
            else "—"
            for pp in passes
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _tfx_table(passes: list[dict]) -> list[str]:
    """Where the TFX Pusher's time goes: its process importing TFX (and TensorFlow), then Do() copying."""
    lines = ["", "## TFX Pusher: import and executor Do() (median seconds; Do() copies the model twice, no fsync)",
             "", "| model | " + " | ".join(f"pass {i + 1}: import / Do()" for i in range(len(passes))) + " |",
             "|---|" + "---|" * len(passes)]  # fmt: skip
    for size in passes[0]["publish_tfx"]:
        cells = []
        for pp in passes:
            phases = pp.get("publish_tfx", {}).get(size, {}).get("phases_seconds", {})
            cells.append(
                f"{phases['import']['median']:.2f} / {phases['do']['median']:.2f}" if "do" in phases else "—"
            )
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
    return lines


def write_markdown(r: dict) -> str:
    passes = r["passes"]
    head = ["# Benchmark results", ""]
    head.append(
        f"{r['started']}, Python {r['machine']['python']}, {r['machine']['cpus']} CPUs, load average at start "
        f"{', '.join(f'{x:.1f}' for x in r['load_average_at_start'])} (the machine is shared: other work runs "
        f"alongside). Each ratio is the median of per-pair ratios (ours and the reference alternating), "
        f"min–max in brackets; {len(passes)} consecutive pass(es) of the whole suite."
        + (" **Quick run: small sizes, not the reference figures.**" if r.get("quick") else "")
    )
    cache = next((row.get("page_cache") for row in passes[0].get("publish_local", {}).values()), None)
    if cache:
        head += ["", f"Page cache before each side: {cache}."]
    cols = " | ".join(f"pass {i + 1}: ratio" for i in range(len(passes)))
    lines = [*head, "", f"| measurement | ours | reference | {cols} | goal | verdict |",
             "|---|---|---|" + "---|" * len(passes) + "---|---|"]  # fmt: skip
    per_pass = [dict((label, (row, unit)) for label, row, unit in _rows(p)) for p in passes]
    for label, (row, unit) in per_pass[0].items():
        ratios = " | ".join(_ratio(pp[label][0]) if label in pp else "—" for pp in per_pass)
        if "information only" in label:
            verdicts = {"information only"}
        else:
            verdicts = {
                _verdict(pp[label][0]["ratio"]["median"], row["goal"]) for pp in per_pass if label in pp
            }
        lines.append(f"| {label} | {_t(row['ours_seconds'], unit)} | {_t(row['reference_seconds'], unit)} | "
                     f"{ratios} | {row['goal']} | {' / '.join(sorted(verdicts))} |")  # fmt: skip
    if "memory" in passes[0]:
        m = passes[0]["memory"]
        sizes = ", ".join(f"{k}: {v['peak_rss_mb']['median']:.0f} MB" for k, v in m["by_model_size"].items())
        lines.append(f"| 4 · peak RSS of a push ({sizes}) | growth {m['growth_mb']:.0f} MB | — | "
                     + "— | " * len(passes) + f"{m['goal']} | {_verdict(m['growth_mb'], m['goal'])} |")  # fmt: skip
    if passes[0].get("publish_tfx"):
        lines += _tfx_table(passes)
    for key, what in _STORES.items():
        if key in passes[0]:
            lines += _phase_table(passes, key, what)
    if "end_to_end" in passes[0]:
        lines += [
            "",
            "## End-to-end breakdown (median seconds, pass 1)",
            "",
            "| part | seconds |",
            "|---|---|",
        ]
        for part, seconds in passes[0]["end_to_end"]["breakdown_median_seconds"].items():
            lines.append(f"| {part} | {seconds:.2f} |" if seconds is not None else f"| {part} | — |")
    lines += ["", "Wall time of each pass: " + ", ".join(f"{p['seconds']:.0f} s" for p in passes) + "."]
    return "\n".join(lines) + "\n"
