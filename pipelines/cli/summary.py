"""What `kfp-tfserving run` tells the user when a version is published."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kfp_tfserving.components.common.artifacts import PushedModelMetadata


def run_result(metadata: dict[str, Any]) -> dict[str, Any]:
    """What `run --json` prints, from the pushed model's metadata."""
    pushed = PushedModelMetadata.from_dict(metadata)
    return {
        "model_name": pushed.model_name,
        "version": pushed.version,
        "path": pushed.pushed_destination,
        "base_path": pushed.base_path,
        "published": bool(pushed.published),
        "outcome": pushed.push_outcome,
        "content_digest": pushed.content_digest,
        "signature": pushed.serving_signature,
        "repaired": pushed.repaired,
    }


def print_run_summary(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=True)
    if result["published"]:
        console.print(
            f"[bold green]Published[/] version {result['version']} of '{result['model_name']}': {result['path']}"
        )
    else:  # the newest version already serves this model: TF Serving has nothing new to load
        console.print(
            f"[bold yellow]unchanged: version {result['version']} kept[/] of '{result['model_name']}': "
            f"{result['path']} already serves this model (--force publishes anyway)"
        )
    if result.get("repaired"):
        console.print(f"[yellow]Repaired[/] on the way in: {result['repaired']}", highlight=False)
    table = Table(title="serving_default")
    for column in ("", "name", "dtype", "shape"):
        table.add_column(column)
    signature = result["signature"]
    for role in ("inputs", "outputs"):
        for name, spec in signature.get(role, {}).items():
            table.add_row(role[:-1], name, spec["dtype"], str(spec["shape"]))
    console.print(table)
    base = result["base_path"]
    if "://" not in base:
        base = str(Path(base).resolve())
    name = result["model_name"]
    how_to_serve = (
        "Serve it with TF Serving:\n"
        f"  tensorflow_model_server --rest_api_port=8501 --model_name={name} --model_base_path={base}\n"
        f"  docker run -p 8501:8501 -v {base}:/models/{name} -e MODEL_NAME={name} tensorflow/serving\n"
        f"then: curl http://localhost:8501/v1/models/{name}/metadata"
    )
    console.print(how_to_serve, highlight=False)
