"""The check report: a Markdown page for the KFP UI and a table for the terminal."""

from __future__ import annotations

from kfp_tfserving.components.check_signatures.findings import Finding
from kfp_tfserving.components.common.formats.saved_model_io import SignatureInfo


def _tensors(specs) -> str:
    return "<br>".join(s.describe() for s in specs) or "—"


def markdown_report(
    model_dir: str, signatures: dict[str, SignatureInfo], findings: list[Finding], runtime: dict
) -> str:
    lines = [
        f"# Signature check: `{model_dir}`",
        "",
        "## Signatures",
        "",
        "| signature | method | inputs | outputs |",
        "|---|---|---|---|",
    ]
    for name, sig in signatures.items():
        lines.append(f"| `{name}` | `{sig.method_name}` | {_tensors(sig.inputs)} | {_tensors(sig.outputs)} |")
    lines += ["", "## Findings", ""]
    if findings:
        lines += ["| severity | code | where | message | fix |", "|---|---|---|---|---|"]
        for f in findings:
            where = "/".join(p for p in (f.signature, f.tensor) if p) or "—"
            lines.append(f"| {f.severity} | `{f.code}` | {where} | {f.message} | {f.fix} |")
    else:
        lines.append("No findings: TF Serving should load and serve this model.")
    if "load_seconds" in runtime:
        lines += [
            "",
            f"Loaded in {runtime['load_seconds']:.2f} s; serving_default median latency "
            f"{runtime['median_latency_ms']:.2f} ms (batch 2).",
        ]
    return "\n".join(lines) + "\n"


def print_table(signatures: dict[str, SignatureInfo], findings: list[Finding]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="Signatures")
    for column in ("signature", "method", "inputs", "outputs"):
        table.add_column(column)
    for name, sig in signatures.items():
        table.add_row(
            name,
            sig.method_name,
            "\n".join(s.describe() for s in sig.inputs),
            "\n".join(s.describe() for s in sig.outputs),
        )
    console.print(table)
    if not findings:
        console.print("No findings: TF Serving should load and serve this model.")
        return
    found = Table(title="Findings")
    for column in ("severity", "code", "where", "message / fix"):
        found.add_column(column)
    for f in findings:
        style = "red" if f.severity == "error" else "yellow"
        where = "/".join(p for p in (f.signature, f.tensor) if p)
        found.add_row(f"[{style}]{f.severity}[/{style}]", f.code, where, f"{f.message}\n→ {f.fix}")
    console.print(found)
