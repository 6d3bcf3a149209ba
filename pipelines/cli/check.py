"""`kfp-tfserving check`: the check step's verdict on any SavedModel directory."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from kfp_tfserving.components.check_signatures.options import CHECK_OPTIONS
from kfp_tfserving.components.common.errors import EXIT_REJECTED, UserError
from kfp_tfserving.pipelines.cli.options import cli_options


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@cli_options(
    CHECK_OPTIONS.only("contract_uri", "serving_tf_version", "tags", "sample_uri", "serving_cpus"),
    tags="--saved-model-tags",  # the spelling of earlier releases
)
@click.option(
    "--batching",
    is_flag=True,
    help="Also sweep batch sizes and load-test the chosen batching parameters (about 15 s); nothing is "
    "written.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
def check(
    path: Path,
    contract_uri: str,
    serving_tf_version: str,
    tags: str,
    sample_uri: str,
    serving_cpus: int,
    batching: bool,
    as_json: bool,
) -> None:
    """Check a SavedModel directory as TF Serving would; exit 1 on an error-level finding.

    The model directory is not changed: the warmup file is generated and replayed in a scratch copy.
    With --batching, a model that passes is also swept and load-tested as the check step does before it
    writes batching_params.pbtxt (see the README's "Serving configuration"); the verdict is printed, the
    file is not written.
    """
    from kfp_tfserving.components.check_signatures.batching import DEFAULT_BUDGET_SECONDS
    from kfp_tfserving.components.check_signatures.batching_report import print_batching
    from kfp_tfserving.components.check_signatures.check_session import Batching
    from kfp_tfserving.components.check_signatures.check_step import check_model
    from kfp_tfserving.components.check_signatures.contract import load_contract
    from kfp_tfserving.components.check_signatures.report import print_table
    from kfp_tfserving.components.common.saved_model.tags import parse_tags

    if not path.is_dir():
        raise UserError(f"{path}: not a directory", "give the path of a SavedModel directory")
    contract = load_contract(contract_uri) if contract_uri else None
    measure = Batching(DEFAULT_BUDGET_SECONDS, serving_cpus, write=False)
    report = check_model(
        path,
        contract=contract,
        serving_tf_version=serving_tf_version,
        batching=measure if batching else None,
        tags=parse_tags(tags),
        sample_uri=sample_uri,
    )
    if as_json:
        click.echo(json.dumps(report.as_dict(), sort_keys=True))
    else:
        print_table(report)
        if report.runtime.batching is not None:
            print_batching(report.runtime.batching)
    if not report.passed:
        sys.exit(EXIT_REJECTED)
