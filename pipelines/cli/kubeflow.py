"""`kfp-tfserving submit`, `runs`, `schedule` and `compile`: the commands that hand pipelines to Kubeflow."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

# `submit --wait`: the run failed or was canceled; still running when --timeout passed (as timeout(1)).
EXIT_RUN_FAILED = 1
EXIT_WAIT_TIMED_OUT = 124

_PIPELINE_HELP = (
    "PIPELINE: a committed pipeline (export_to_serving, serve_model, retrain_and_export) or a YAML path."
)


# The KFP API connection, for every command that talks to it (each use makes its own click.Option).
_HOST = click.option(
    "--host",
    envvar="KF_PIPELINES_ENDPOINT",
    required=True,
    help="KFP API endpoint, e.g. http://localhost:8080 after a port-forward ($KF_PIPELINES_ENDPOINT).",
)
_NAMESPACE = click.option("--namespace", default=None, help="Kubernetes namespace (multi-user Kubeflow).")
_TOKEN = click.option("--token", envvar="KFP_TFSERVING_TOKEN", default=None, help="Bearer token for the API.")


def _host_options(func):
    """PIPELINE, the connection, -p parameters and the experiment: what submit and schedule share."""
    func = _TOKEN(func)
    func = _NAMESPACE(func)
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
    return click.argument("pipeline")(_HOST(func))


@click.command(epilog=_PIPELINE_HELP)
@_host_options
@click.option("--run-name", default=None, help="Run name (default: the file name and the time).")
@click.option(
    "--wait", is_flag=True, help="Follow the run, print each step's state; exit 0 only if it succeeded."
)
@click.option(
    "--timeout", type=float, default=None, help="With --wait: give up after this many seconds (exit 124)."
)
@click.option(
    "--poll-interval", type=float, default=5.0, show_default=True, help="With --wait: seconds between polls."
)
def submit(
    pipeline: str,
    host: str,
    params: tuple[str, ...],
    experiment: str,
    namespace: str | None,
    token: str | None,
    run_name: str | None,
    wait: bool,
    timeout: float | None,
    poll_interval: float,
) -> None:
    """Start one run of PIPELINE on a Kubeflow Pipelines cluster.

    With --wait: exit 0 when the run succeeded, 1 when it failed or was canceled (the failing step and its
    error line are printed), 124 when --timeout passed first (the run goes on on the cluster).
    """
    from kfp_tfserving.pipelines.cli.kubeflow_client import pipeline_arguments, resolve_pipeline, submit_run

    path = resolve_pipeline(pipeline)
    arguments = pipeline_arguments(path, params)
    result = submit_run(
        host, path, arguments, experiment=experiment, run_name=run_name, namespace=namespace, token=token
    )
    click.echo(f"run {result['run_id']}: {result['url']}")
    if wait:
        sys.exit(_wait(host, result["run_id"], namespace, token, timeout, poll_interval))


class _Progress:
    """Each step's state as it changes: rich on a terminal, one plain line per change otherwise."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.console = None
        if sys.stdout.isatty():
            from rich.console import Console

            self.console = Console()
            self.status = self.console.status("waiting for the run to start …")

    def __enter__(self) -> _Progress:
        if self.console is not None:
            self.status.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.console is not None:
            self.status.__exit__(*exc)

    def changed(self, view, steps) -> None:
        elapsed = f"{time.monotonic() - self.start:5.0f}s"
        lines = [(s.name, s.state) for s in steps] or [("run", view.state)]
        for name, state in lines:
            if self.console is None:
                click.echo(f"{elapsed}  {name}: {state}")
            else:
                colour = {"SUCCEEDED": "green", "FAILED": "red", "RUNNING": "cyan"}.get(state, "yellow")
                self.console.print(f"[dim]{elapsed}[/]  {name}: [{colour}]{state}[/]")
        if self.console is not None:
            running = [s.name for s in view.steps if s.state == "RUNNING"]
            self.status.update(f"run {view.state}" + (f": {', '.join(running)} …" if running else ""))


def _wait(host, run_id, namespace, token, timeout, poll_interval) -> int:
    from kfp_tfserving.pipelines.cli.run_watch import WaitTimedOut, follow_run

    try:
        with _Progress() as progress:
            view = follow_run(
                host,
                run_id,
                namespace=namespace,
                token=token,
                timeout=timeout,
                poll_seconds=poll_interval,
                on_change=progress.changed,
            )
    except WaitTimedOut as timed_out:
        click.echo(f"error: {timed_out}; it goes on on the cluster (see `kfp-tfserving runs`)", err=True)
        return EXIT_WAIT_TIMED_OUT
    if view.state == "SUCCEEDED":
        click.echo(f"run {run_id}: SUCCEEDED")
        return 0
    step = view.failing_step()
    where = f"step {step.name}" if step else "the run"
    reason = (step.error if step else "") or view.error or "no error message in the run's details"
    click.echo(f"error: run {run_id} {view.state}: {where}: {reason}", err=True)
    return EXIT_RUN_FAILED


@click.command()
@_HOST
@_NAMESPACE
@_TOKEN
@click.option("--limit", default=20, show_default=True, type=int, help="How many recent runs to read.")
def runs(host: str, namespace: str | None, token: str | None, limit: int) -> None:
    """List recent runs of this project's pipelines: state and the version each published.

    The version is read from the run's base_path: the one whose manifest records the run's id (the push
    step writes it); '-' when the run published none, '?' when the base path cannot be read from here
    (e.g. a PVC).
    """
    from kfp_tfserving.pipelines.cli.run_watch import published_version, recent_runs

    views = recent_runs(host, limit=limit, namespace=namespace, token=token)
    if not views:
        click.echo("no runs")
        return
    rows = [
        (
            v.created_at.strftime("%Y-%m-%d %H:%M") if v.created_at else "",
            v.name,
            v.pipeline or "?",
            v.state,
            published_version(v),
            v.run_id,
        )
        for v in views
    ]
    header = ("created", "run", "pipeline", "state", "version", "run id")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


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
@click.option(
    "--image",
    default="",
    metavar="REGISTRY/NAME:TAG",
    help="Run every step in this image (the runtime image pushed to your registry).",
)
def compile_command(
    pipeline_name: str | None,
    output: Path | None,
    pvcs: tuple[str, ...],
    secret_envs: tuple[str, ...],
    node_selectors: tuple[str, ...],
    resources: tuple[str, ...],
    image: str,
) -> None:
    """Regenerate every component.yaml and pipeline YAML from the Python.

    With --pvc, --secret-env, --node-selector, --resources or --image: compile only --pipeline, with those
    Kubernetes settings, to --output (the committed YAMLs keep the pipelines' defaults).
    """
    from kfp_tfserving.components.common.errors import UserError
    from kfp_tfserving.pipelines.cli.compile import compile_all
    from kfp_tfserving.pipelines.cli.kubernetes_options import compile_with_options, options_from_cli

    options = options_from_cli(pvcs, secret_envs, node_selectors, resources, image)
    if options.is_empty() and pipeline_name is None and output is None:
        for path in compile_all():
            click.echo(f"wrote {path}")
        return
    if pipeline_name is None or output is None:
        raise UserError(
            "--pipeline and --output go together", "give both, e.g. --pipeline export_to_serving -o k8s.yaml"
        )
    written = compile_with_options(pipeline_name, options, output)
    click.echo(f"wrote {written}")
