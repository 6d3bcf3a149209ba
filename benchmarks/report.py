"""Render benchmark results as a Markdown page."""

from __future__ import annotations

import re


def _s(summary: dict, unit: str = "s", digits: int = 2) -> str:
    return f"{summary['median']:.{digits}f} {unit} ({summary['min']:.{digits}f}–{summary['max']:.{digits}f})"


def _verdict(value: float, goal: str) -> str:
    op, target = re.search(r"(>=|<=|<)\s*([\d.]+)", goal).groups()
    ok = {">=": value >= float(target), "<=": value <= float(target), "<": value < float(target)}[op]
    return "met" if ok else "**missed**"


def write_markdown(r: dict) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"{r['started']}, Python {r['machine']['python']}, {r['machine']['cpus']} CPUs; "
        f"median (min–max) of {r['runs']} runs, every comparison measured side by side in the same run."
        + (" **Quick run: small sizes, not the reference figures.**" if r.get("quick") else ""),
        "",
        "| # | measurement | ours | reference | ratio | goal | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    if "publish_local" in r:
        p = r["publish_local"]
        lines.append(f"| 1 | push {p['model_mb']} MB to a local base path vs `cp -r` | {_s(p['push_seconds'])} | "
                     f"{_s(p['cp_seconds'])} | {p['throughput_ratio']:.2f}× throughput | {p['goal']} | "
                     f"{_verdict(p['throughput_ratio'], p['goal'])} |")  # fmt: skip
        lines.append(f"| 1 | (durable reference) push vs `cp -r` + `sync` | {_s(p['push_seconds'])} | "
                     f"{_s(p['cp_sync_seconds'])} | {p['cp_sync_seconds']['median'] / p['push_seconds']['median']:.2f}× throughput | — | — |")  # fmt: skip
        lines.append(f"| 1 | (floor) sha256 of the same files, one core | {_s(p['sha256_only_seconds'])} | "
                     f"{_s(p['cp_seconds'])} | {p['cp_seconds']['median'] / p['sha256_only_seconds']['median']:.2f}× | — | — |")  # fmt: skip
    if "publish_gcs" in r:
        p = r["publish_gcs"]
        lines.append(f"| 1 | push {p['model_mb']} MB to the GCS emulator vs transfer-manager upload | "
                     f"{_s(p['push_seconds'])} | {_s(p['transfer_manager_seconds'])} | "
                     f"{p['throughput_ratio']:.2f}× throughput | {p['goal']} | {_verdict(p['throughput_ratio'], p['goal'])} |")  # fmt: skip
    for case, rows in r.get("latency", {}).items():
        for batch, row in rows.items():
            lines.append(f"| 2 | {case} exported `serving_default` vs source, {batch.replace('_', ' ')} | "
                         f"{_s(row['exported_ms'], 'ms', 3)} | {_s(row['source_ms'], 'ms', 3)} | "
                         f"{row['latency_ratio']:.2f}× latency | {row['goal']} | {_verdict(row['latency_ratio'], row['goal'])} |")  # fmt: skip
    if "end_to_end" in r:
        e = r["end_to_end"]
        lines.append(f"| 3 | `kfp-tfserving run` on a {e['model_mb']} MB Keras model vs bare load+save+copy | "
                     f"{_s(e['run_seconds'])} | {_s(e['bare_script_seconds'])} | {e['ratio']:.2f}× time | "
                     f"{e['goal']} | {_verdict(e['ratio'], e['goal'])} |")  # fmt: skip
    if "memory" in r:
        m = r["memory"]
        sizes = ", ".join(f"{k}: {v['peak_rss_mb']['median']:.0f} MB" for k, v in m["by_model_size"].items())
        lines.append(f"| 4 | peak RSS of a push ({sizes}) | growth {m['growth_mb']:.0f} MB | — | — | {m['goal']} | "
                     f"{_verdict(m['growth_mb'], m['goal'])} |")  # fmt: skip
    if "end_to_end" in r:
        lines += ["", "## End-to-end breakdown (median seconds)", "", "| part | seconds |", "|---|---|"]
        for part, seconds in r["end_to_end"]["breakdown_median_seconds"].items():
            lines.append(f"| {part} | {seconds:.2f} |" if seconds is not None else f"| {part} | — |")
    return "\n".join(lines) + "\n"
