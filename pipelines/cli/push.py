"""`kfp-tfserving push`, `versions` and `rollback`: the push step's logic straight from the command line."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from kfp_tfserving.components.common.errors import UserError
from kfp_tfserving.components.push_to_serving.options import PUSH_OPTIONS
from kfp_tfserving.pipelines.cli.options import absolute as _absolute
from kfp_tfserving.pipelines.cli.options import cli_options, from_command_line


@click.command()
@click.argument("savedmodel", type=click.Path(path_type=Path))
@cli_options(PUSH_OPTIONS)
@click.option(
    "--sample", type=click.Path(path_type=Path, exists=True), default=None, help="Request for --serving-url."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def push(savedmodel: Path, sample: Path | None, as_json: bool, **given: Any) -> None:
    """Publish the SavedModel directory SAVEDMODEL as a new version under --base-path."""
    from kfp_tfserving.components.push_to_serving.publisher import PushOptions, publish

    if not savedmodel.is_dir():
        raise UserError(f"{savedmodel}: not a directory", "give the path of a SavedModel directory")
    settings = from_command_line(PUSH_OPTIONS, given)
    base_path = settings.pop("base_path")
    options = PushOptions(**settings, sample=sample)
    result = publish(savedmodel, base_path, source={"source_uri": str(savedmodel)}, options=options)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "version": result.version,
                    "path": result.destination,
                    "published": result.published,
                    "outcome": result.outcome,
                    "model_fingerprint": result.model_fingerprint,
                    "content_digest": result.content_digest,
                    "manifest_sha256": result.manifest_sha256,
                    "removed": result.removed,
                    "labels": result.labels,
                },
                sort_keys=True,
            )
        )


@click.command()
@click.argument("base")
@click.option("--models-config", default="", help="Show this config's version labels.")
@click.option("--model-name", default="", help="Model name in the config (default: last segment of BASE).")
@click.option("--deep", is_flag=True, help="On gs:// and s3://, download and hash every file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list.")
def versions(base: str, models_config: str, model_name: str, deep: bool, as_json: bool) -> None:
    """List the versions under BASE: time, size, labels, and whether the files match the manifest."""
    from kfp_tfserving.components.common.progress import human_bytes
    from kfp_tfserving.components.common.storage import storage_for
    from kfp_tfserving.components.push_to_serving import models_config as mc
    from kfp_tfserving.components.push_to_serving.publisher import model_name_from_base_path
    from kfp_tfserving.components.push_to_serving.versions import inspect_version, numeric_versions

    base = _absolute(base)
    storage = storage_for(base)
    if storage.scheme == "file" and not storage.is_dir(base):
        raise UserError(
            f"{base}: no such directory", "give the model base path that holds the version directories"
        )
    labels: dict[int, list[str]] = {}
    if models_config:
        config_uri = _absolute(models_config)
        config = mc.load(storage_for(config_uri), config_uri)
        for label, number in mc.labels_of(config, model_name or model_name_from_base_path(base)).items():
            labels.setdefault(number, []).append(label)
    rows = []
    for number in numeric_versions(storage, base):
        info = inspect_version(storage, base, number, deep=deep)
        stamp = info.manifest.published_at if info.manifest else 0
        rows.append(
            {
                "version": number,
                "time": datetime.fromtimestamp(stamp, timezone.utc).isoformat(timespec="seconds")
                if stamp
                else "",
                "size": info.size,
                "labels": sorted(labels.get(number, [])),
                "verified": info.verified,
                "problem": info.problems[0] if info.problems else "",
            }
        )
    if as_json:
        click.echo(json.dumps(rows, sort_keys=True))
        return
    if not rows:
        click.echo(f"{base}: no published versions")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=base)
    for column in ("version", "time (UTC)", "size", "labels", "manifest verified"):
        table.add_column(column)
    for row in rows:
        verdict = "[green]yes[/]" if row["verified"] else f"[red]no[/] ({row['problem']})"
        table.add_row(
            str(row["version"]), row["time"], human_bytes(row["size"]), ", ".join(row["labels"]), verdict
        )
    Console().print(table)


@click.command()
@click.argument("base")
@click.option(
    "--to",
    "to",
    type=int,
    default=None,
    help="The version to return to (default: the one before the newest).",
)
@click.option(
    "--models-config", default="", help="Move labels of removed versions to the target in this config."
)
@click.option("--model-name", default="", help="Model name in the config (default: last segment of BASE).")
def rollback(base: str, to: int | None, models_config: str, model_name: str) -> None:
    """Remove the versions newer than the target, so TF Serving serves the target again."""
    from kfp_tfserving.components.push_to_serving.rollback import rollback as do_rollback

    target, removed = do_rollback(
        _absolute(base),
        to,
        models_config=_absolute(models_config) if models_config else "",
        model_name=model_name,
    )
    click.echo(f"rolled back to version {target}; removed {', '.join(map(str, removed))}")
