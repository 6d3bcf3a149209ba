"""The kfp-tfserving command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from kfp_tfserving.components import __version__
from kfp_tfserving.components.common.errors import UserError, exit_code_for


def _fail(err: UserError) -> None:
    click.echo(f"error: {err.one_line()}", err=True)
    sys.exit(exit_code_for(err))


def _absolute(uri: str) -> str:
    return uri if "://" in uri else str(Path(uri).expanduser().resolve())


def _preflight(
    source: str,
    base_path: str,
    model_format: str,
    model_name: str = "",
    version_policy: str = "next",
    version: int = 0,
    sample_uri: str = "",
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
    if sample_uri and "://" not in sample_uri:
        check_sample_file(Path(sample_uri).expanduser(), sample_uri)
    if storage_for(base_path).scheme in ("http", "https"):
        raise UserError(f"{base_path}: http(s) is read-only", "publish to a local path, gs:// or s3://")
    if model_format not in ("", "auto"):
        handler_named(model_format)


class _Group(click.Group):
    """Every UserError becomes one line on stderr and exit code 2 (75 when storage may answer on a retry);
    no traceback."""

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
            sys.exit(1)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="kfp-tfserving")
def main() -> None:
    """Publish pretrained TensorFlow models as TF Serving versions with Kubeflow Pipelines components."""


@main.command()
@click.argument("source")
@click.option(
    "--base-path", required=True, help="TF Serving's model_base_path: holds the numeric version directories."
)
@click.option(
    "--model-name", default="", help="Model name in TF Serving (default: last segment of --base-path)."
)
@click.option(
    "--format", "model_format", default="auto", show_default=True, help="Source format, or auto to detect."
)
@click.option(
    "--signature", default="", help="Source signature to serve when the model has no serving_default."
)
@click.option("--inputs", default="", help="TF1 graphs: comma-separated input tensor names.")
@click.option("--outputs", default="", help="TF1 graphs: comma-separated output tensor names.")
@click.option(
    "--feed",
    "feeds",
    multiple=True,
    metavar="NAME=VALUE",
    help="TF1 graphs: bind a placeholder to a constant.",
)
@click.option(
    "--allow-unsafe-deserialization", is_flag=True, help="Load models carrying Python code (Lambda layers)."
)
@click.option(
    "--custom-objects",
    "custom_objects",
    multiple=True,
    metavar="MODULE[:NAME,...]",
    help="Keras: import MODULE before loading so its registered Python-defined layers deserialize "
    "(it must be importable where the steps run).",
)
@click.option(
    "--tags",
    default="serve",
    show_default=True,
    help="The tag-set TF Serving loads (its --saved_model_tags), e.g. serve,gpu: the SavedModel meta graph "
    "exported, checked and served.",
)
@click.option(
    "--sample", "sample_uri", default="", help="An .npz or TF Serving JSON request used for parity."
)
@click.option(
    "--contract",
    "contract_uri",
    default="",
    help="Expected-signature file (YAML or JSON); the check step fails on any difference.",
)
@click.option(
    "--no-batching-params",
    "no_batching_params",
    is_flag=True,
    help="Do not measure and write batching_params.pbtxt into the version.",
)
@click.option(
    "--serving-cpus",
    default=0,
    type=int,
    help="CPUs of the model server, for the batching parameters (default: this machine's).",
)
@click.option("--parity-atol", default=1e-4, show_default=True, type=float)
@click.option("--parity-rtol", default=1e-4, show_default=True, type=float)
@click.option(
    "--version-policy",
    type=click.Choice(["next", "timestamp", "explicit"]),
    default="next",
    show_default=True,
)
@click.option(
    "--version", "version", default=0, type=int, help="The version number with --version-policy explicit."
)
@click.option("--force", is_flag=True, help="Publish even if the newest version is the same model.")
@click.option(
    "--pipeline-root", type=click.Path(path_type=Path), default=None, help="Keep step artifacts here."
)
@click.option(
    "--read-deadline",
    default=300.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a remote read may wait in total (connecting, retrying, stalled) before it fails.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a summary.")
@click.option("--verbose", is_flag=True, help="Show every step's log.")
def run(
    source: str,
    base_path: str,
    model_name: str,
    model_format: str,
    signature: str,
    inputs: str,
    outputs: str,
    feeds: tuple[str, ...],
    allow_unsafe_deserialization: bool,
    custom_objects: tuple[str, ...],
    tags: str,
    sample_uri: str,
    contract_uri: str,
    no_batching_params: bool,
    serving_cpus: int,
    parity_atol: float,
    parity_rtol: float,
    version_policy: str,
    version: int,
    force: bool,
    pipeline_root: Path | None,
    read_deadline: float,
    as_json: bool,
    verbose: bool,
) -> None:
    """Run the export_to_serving pipeline on SOURCE with kfp.local, from its committed compiled YAML."""
    import os

    from kfp_tfserving.components.common.formats.custom_objects import parse_custom_objects
    from kfp_tfserving.components.common.saved_model.tags import parse_tags
    from kfp_tfserving.components.common.storage.base import DEADLINE_ENV
    from kfp_tfserving.pipelines.cli.compile import pipeline_yaml
    from kfp_tfserving.pipelines.cli.local_run import run_pipeline_yaml
    from kfp_tfserving.pipelines.cli.summary import print_run_summary, run_result

    os.environ[DEADLINE_ENV] = f"{read_deadline:g}"  # the local steps inherit it
    _preflight(source, base_path, model_format, model_name, version_policy, version, sample_uri)
    parse_custom_objects(list(custom_objects))
    arguments = {
        "source_uri": _absolute(source),
        "base_path": _absolute(base_path),
        "model_name": model_name,
        "model_format": model_format,
        "read_deadline": read_deadline,
        "signature": signature,
        "inputs": [n.strip() for n in inputs.split(",") if n.strip()],
        "outputs": [n.strip() for n in outputs.split(",") if n.strip()],
        "feeds": list(feeds),
        "allow_unsafe_deserialization": allow_unsafe_deserialization,
        "custom_objects": list(custom_objects),
        "tags": ",".join(parse_tags(tags)),
        "sample_uri": _absolute(sample_uri) if sample_uri else "",
        "contract_uri": _absolute(contract_uri) if contract_uri else "",
        "batching_params": not no_batching_params,
        "serving_cpus": serving_cpus,
        "parity_atol": parity_atol,
        "parity_rtol": parity_rtol,
        "version_policy": version_policy,
        "version": version,
        "force": force,
    }
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
