"""`kfp-tfserving submit`, `schedule` and `compile`: the commands that hand pipelines to Kubeflow."""

from __future__ import annotations

from pathlib import Path

import click

_PIPELINE_HELP = (
    "PIPELINE: a committed pipeline (export_to_serving, serve_model, retrain_and_export) or a YAML path."
)


def _host_options(func):
    func = click.option(
        "--token", envvar="KFP_TFSERVING_TOKEN", default=None, help="Bearer token for the API."
    )(func)
    func = click.option("--namespace", default=None, help="Kubernetes namespace (multi-user Kubeflow).")(func)
    func = click.option(
        "--experiment", default="kfp-tfserving", show_default=True, help="Experiment to file the run under."
    )(func)
    func = click.option(
        "-p",
        "--param",
        "params",
        multiple=True,
        metavar="NAME=VALUE",
        help="A pipeline parameter; lists as a,b or JSON.",
    )(func)
    func = click.option(
        "--host",
        envvar="KF_PIPELINES_ENDPOINT",
        required=True,
        help="KFP API endpoint, e.g. http://localhost:8080 after a port-forward ($KF_PIPELINES_ENDPOINT).",
    )(func)
    return click.argument("pipeline")(func)


@click.command(epilog=_PIPELINE_HELP)
@_host_options
@click.option("--run-name", default=None, help="Run name (default: the file name and the time).")
def submit(
    pipeline: str,
    host: str,
    params: tuple[str, ...],
    experiment: str,
    namespace: str | None,
    token: str | None,
    run_name: str | None,
) -> None:
    """Start one run of PIPELINE on a Kubeflow Pipelines cluster."""
    from kfp_tfserving.pipelines.cli.kubeflow_client import pipeline_arguments, resolve_pipeline, submit_run

    path = resolve_pipeline(pipeline)
    arguments = pipeline_arguments(path, params)
    result = submit_run(
        host, path, arguments, experiment=experiment, run_name=run_name, namespace=namespace, token=token
    )
    click.echo(f"run {result['run_id']}: {result['url']}")


@click.command(epilog=_PIPELINE_HELP)
@_host_options
@click.option(
    "--cron",
    required=True,
    help="KFP's six-field cron, seconds first: '0 0 2 * * *' runs at 02:00 every day.",
)
@click.option("--name", "job_name", default=None, help="Recurring run name (default: the pipeline's name).")
@click.option("--catchup", is_flag=True, help="Also start the runs missed while the schedule was paused.")
def schedule(
    pipeline: str,
    host: str,
    params: tuple[str, ...],
    experiment: str,
    namespace: str | None,
    token: str | None,
    cron: str,
    job_name: str | None,
    catchup: bool,
) -> None:
    """Run PIPELINE on a schedule (one run at a time) on a Kubeflow Pipelines cluster."""
    from kfp_tfserving.pipelines.cli.kubeflow_client import (
        pipeline_arguments,
        resolve_pipeline,
        schedule_run,
        validate_cron,
    )

    cron = validate_cron(cron)  # before anything else, so a bad schedule never reaches the server
    path = resolve_pipeline(pipeline)
    arguments = pipeline_arguments(path, params)
    result = schedule_run(
        host,
        path,
        arguments,
        cron=cron,
        experiment=experiment,
        job_name=job_name or path.stem,
        catchup=catchup,
        namespace=namespace,
        token=token,
    )
    click.echo(f"recurring run {result['recurring_run_id']} ({cron}): {result['url']}")


@click.command(name="compile")
@click.option(
    "--pipeline", "pipeline_name", default=None, help="With Kubernetes options: the pipeline to compile."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="With Kubernetes options: file to write.",
)
@click.option("--pvc", "pvcs", multiple=True, metavar="CLAIM:/PATH", help="Mount a PVC on the push step.")
@click.option(
    "--secret-env",
    "secret_envs",
    multiple=True,
    metavar="SECRET:KEY=ENV",
    help="Expose a secret's key as an environment variable in every step (storage credentials).",
)
@click.option(
    "--node-selector",
    "node_selectors",
    multiple=True,
    metavar="LABEL=VALUE",
    help="Schedule every step there.",
)
@click.option(
    "--resources",
    "resources",
    multiple=True,
    metavar="STEP=cpu:N,memory:SIZE[,gpu:N,accelerator:TYPE]",
    help="Size one step (request = limit), e.g. export_savedmodel=cpu:2,memory:16Gi; "
    "fields not given keep the pipeline's default.",
)
def compile_command(
    pipeline_name: str | None,
    output: Path | None,
    pvcs: tuple[str, ...],
    secret_envs: tuple[str, ...],
    node_selectors: tuple[str, ...],
    resources: tuple[str, ...],
) -> None:
    """Regenerate every component.yaml and pipeline YAML from the Python.

    With --pvc, --secret-env, --node-selector or --resources: compile only --pipeline, with those
    Kubernetes settings, to --output (the committed YAMLs keep the pipelines' defaults).
    """
    from kfp_tfserving.components.common.errors import UserError
    from kfp_tfserving.pipelines.cli.compile import compile_all
    from kfp_tfserving.pipelines.cli.kubernetes_options import (
        committed_pipeline,
        compile_with_options,
        options_from_cli,
    )

    options = options_from_cli(pvcs, secret_envs, node_selectors, resources)
    if options.is_empty() and pipeline_name is None and output is None:
        for path in compile_all():
            click.echo(f"wrote {path}")
        return
    if pipeline_name is None or output is None:
        raise UserError(
            "--pipeline and --output go together", "give both, e.g. --pipeline export_to_serving -o k8s.yaml"
        )
    written = compile_with_options(committed_pipeline(pipeline_name), options, output)
    click.echo(f"wrote {written}")
