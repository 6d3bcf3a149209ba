"""The kfp-tfserving command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from kfp_tfserving.components import __version__
from kfp_tfserving.components.common.errors import EXIT_BUG, UserError, exit_code_for
from kfp_tfserving.pipelines.cli.options import cli_options, from_command_line
from kfp_tfserving.pipelines.parameters import EXPORT_TO_SERVING


def _fail(err: UserError) -> None:
    click.echo(f"error: {err.one_line()}", err=True)
    sys.exit(exit_code_for(err))


def _preflight(
    source: str,
    base_path: str,
    model_format: str,
    model_name: str = "",
    version_policy: str = "next",
    version: int = 0,
    sample_uri: str = "",
    weights_uri: str = "",
) -> None:
    """Mistakes the CLI can see at once, before the pipeline spends time on load and export."""
    from kfp_tfserving.components.common.arguments import check_publish_arguments
    from kfp_tfserving.components.common.formats import handler_named
    from kfp_tfserving.components.common.samples import check_sample_file
    from kfp_tfserving.components.common.storage import storage_for
    from kfp_tfserving.components.common.tree_walk import check_tree

    check_publish_arguments(base_path, model_name, version_policy, version)
    if "://" not in source:
        check_tree(Path(source).expanduser(), source)  # stat only: FIFOs, devices, links out, size
    storage_for(source)
    if weights_uri and "://" not in weights_uri:
        check_tree(Path(weights_uri).expanduser(), weights_uri)
    if sample_uri and "://" not in sample_uri:
        check_sample_file(Path(sample_uri).expanduser(), sample_uri)
    if storage_for(base_path).scheme in ("http", "https"):
        raise UserError(f"{base_path}: http(s) is read-only", "publish to a local path, gs:// or s3://")
    if model_format not in ("", "auto"):
        handler_named(model_format)


class _Group(click.Group):
    """Every UserError becomes one line on stderr and its exit code (components/common/errors.py: 1 the
    model was rejected, 2 bad usage or input, 3 a bug, 75 try again); no traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as err:
            _fail(err)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as err:  # a bug: one line saying so and where the traceback is
            from kfp_tfserving.components.common.errors import bug_line

            click.echo(f"error: {bug_line(err)}", err=True)
            sys.exit(EXIT_BUG)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="kfp-tfserving")
def main() -> None:
    """Publish pretrained TensorFlow models as TF Serving versions with Kubeflow Pipelines components."""


@main.command()
@click.argument("source")
@cli_options(EXPORT_TO_SERVING.without("source_uri"))
@click.option(
    "--pipeline-root", type=click.Path(path_type=Path), default=None, help="Keep step artifacts here."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a summary.")
@click.option("--verbose", is_flag=True, help="Show every step's log.")
def run(source: str, pipeline_root: Path | None, as_json: bool, verbose: bool, **given: Any) -> None:
    """Run the export_to_serving pipeline on SOURCE with kfp.local, from its committed compiled YAML.

    Every option is a parameter of the pipeline (its steps' options: components/<step>/options.py).
    """
    import os

    from kfp_tfserving.components.common.formats.custom_objects import parse_custom_objects
    from kfp_tfserving.components.common.saved_model.tags import parse_tags
    from kfp_tfserving.components.common.storage.base import DEADLINE_ENV, STALL_ENV
    from kfp_tfserving.pipelines.cli.compile import pipeline_yaml
    from kfp_tfserving.pipelines.cli.local_run import run_pipeline_yaml
    from kfp_tfserving.pipelines.cli.summary import print_run_summary, run_result

    arguments = from_command_line(EXPORT_TO_SERVING, {"source_uri": source, **given})
    os.environ[DEADLINE_ENV] = f"{arguments['read_deadline']:g}"  # the local steps inherit it
    os.environ[STALL_ENV] = f"{arguments['stall_timeout']:g}"
    _preflight(
        source,
        given["base_path"],
        arguments["model_format"],
        arguments["model_name"],
        arguments["version_policy"],
        arguments["version"],
        given["sample_uri"],
        given["weights_uri"],
    )
    parse_custom_objects(arguments["custom_objects"])
    arguments["tags"] = ",".join(parse_tags(arguments["tags"]))
    metadata = run_pipeline_yaml(pipeline_yaml(), arguments, pipeline_root=pipeline_root, verbose=verbose)
    result = run_result(metadata)
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
    else:
        print_run_summary(result)


from kfp_tfserving.pipelines.cli.check import check  # noqa: E402

main.add_command(check)

from kfp_tfserving.pipelines.cli.push import push, rollback, versions  # noqa: E402

main.add_command(push)
main.add_command(versions)
main.add_command(rollback)

# compile (with its Kubernetes options), submit, runs, schedule
from kfp_tfserving.pipelines.cli.kubeflow import compile_command, runs, schedule, submit  # noqa: E402

main.add_command(compile_command)
main.add_command(submit)
main.add_command(runs)
main.add_command(schedule)


if __name__ == "__main__":
    main()
