"""The check report: a Markdown page for the KFP UI and tables for the terminal."""

from __future__ import annotations

from typing import Any

from kfp_tfserving.components.check_signatures.findings import ERROR

VERDICT_OK = "No error-level finding: TF Serving should load and serve this model."


def _where(f) -> str:
    return "/".join(p for p in (f.signature, f.tensor) if p)


def runtime_lines(report: Any) -> list[str]:
    """One sentence each: load time and latency, warmup file, TensorFlow versions."""
    rt, lines = report.runtime, []
    if rt.load_seconds is not None:
        latency = (
            f"; serving_default median latency {rt.median_latency_ms:.2f} ms on "
            f"{rt.inputs_from or 'generated inputs'}"
            if rt.median_latency_ms is not None
            else ""
        )
        lines.append(f"Loaded in a fresh process in {rt.load_seconds:.2f} s{latency}.")
    if rt.warmup is not None:
        how = "written and replayed" if rt.warmup.generated else "replayed"
        lines.append(f"Warmup file `{rt.warmup.file}`: {rt.warmup.records} record(s) {how}.")
    if report.versions.get("serving"):
        lines.append(
            f"Written by TensorFlow {report.versions.get('model') or 'unknown'}; "
            f"model server TensorFlow {report.versions['serving']}."
        )
    return lines


def markdown_report(model_dir: str, report: Any) -> str:
    lines = [
        f"# Signature check: `{model_dir}`",
        "",
        "## Signatures",
        "",
        "| signature | method | inputs | outputs |",
        "|---|---|---|---|",
    ]
    for name, sig in report.signatures.items():
        ins = "<br>".join(s.describe() for s in sig.inputs) or "—"
        outs = "<br>".join(s.describe() for s in sig.outputs) or "—"
        lines.append(f"| `{name}` | `{sig.method_name}` | {ins} | {outs} |")
    lines += ["", "## Findings", ""]
    if report.findings:
        lines += ["| severity | code | where | message | fix |", "|---|---|---|---|---|"]
        for f in report.findings:
            message = f.message.replace("|", "\\|")
            lines.append(f"| {f.severity} | `{f.code}` | {_where(f) or '—'} | {message} | {f.fix} |")
    if report.passed:
        lines += ["", VERDICT_OK]
    lines += [""] + runtime_lines(report)
    return "\n".join(lines) + "\n"


def print_table(report: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="Signatures")
    for column in ("signature", "method", "inputs", "outputs"):
        table.add_column(column)
    for name, sig in report.signatures.items():
        table.add_row(
            name,
            sig.method_name,
            "\n".join(s.describe() for s in sig.inputs),
            "\n".join(s.describe() for s in sig.outputs),
        )
    console.print(table)
    if report.findings:
        found = Table(title="Findings")
        for column in ("severity", "code", "where", "message / fix"):
            found.add_column(column)
        for f in report.findings:
            style = "red" if f.severity == ERROR else "yellow"
            found.add_row(f"[{style}]{f.severity}[/{style}]", f.code, _where(f), f"{f.message}\n→ {f.fix}")
        console.print(found)
    for line in runtime_lines(report):
        console.print(line.replace("`", ""))
    console.print(VERDICT_OK if report.passed else "[red]TF Serving would reject this model.[/red]")
