"""Following a run until it ends, and listing recent runs, on a Kubeflow Pipelines API server.

No click here: `submit --wait` and `runs` in kubeflow.py call these. Each run is read with kfp.Client
(`GET /apis/v2beta1/runs[/{id}]`); a step is one entry of the run's `run_details.task_details`.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kfp_tfserving.components.common.errors import ERROR_MARKER, UserError
from kfp_tfserving.pipelines.cli.kubeflow_client import _client, _talking_to

DONE = {"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"}
# The pipelines this project compiles; `runs` lists only theirs (and runs whose spec it cannot see).
OUR_PIPELINES = {"export-to-serving", "serve-model", "retrain-and-export"}
# How many of the newest versions `runs` reads to find the one a run published.
RECENT_VERSIONS = 50
# Task details the backend keeps for its own bookkeeping, not steps a user wrote.
_NOT_STEPS = {"root", "root-driver", "executor"}


@dataclass(frozen=True)
class Step:
    name: str
    state: str
    error: str = ""


@dataclass
class RunView:
    run_id: str
    name: str
    state: str
    steps: list[Step] = field(default_factory=list)
    error: str = ""
    pipeline: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    created_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None

    def failing_step(self) -> Step | None:
        failed = [s for s in self.steps if s.state == "FAILED"]
        # The innermost failure: a failed sub-pipeline's own step says more than the sub-pipeline.
        with_error = [s for s in failed if s.error]
        return (with_error or failed or [None])[-1]


def _error_line(status: Any) -> str:
    message = getattr(status, "message", None) or ""
    at = message.rfind(ERROR_MARKER)
    if at >= 0:  # our steps' own one-line reason, when the backend passed the log line on
        message = message[at + len(ERROR_MARKER) :]
    return " ".join(message.split())[:400]


def view_of(run: Any) -> RunView:
    spec = run.pipeline_spec or {}
    details = run.run_details.task_details if run.run_details and run.run_details.task_details else []
    steps = [
        Step(t.display_name, t.state or "PENDING", _error_line(t.error))
        for t in sorted(details, key=lambda t: (t.create_time or dt.datetime.min.replace(tzinfo=dt.UTC)))
        if t.display_name and t.display_name not in _NOT_STEPS and not t.display_name.endswith("-driver")
        and t.display_name != spec.get("pipelineInfo", {}).get("name")
    ]  # fmt: skip
    return RunView(
        run_id=run.run_id,
        name=run.display_name or run.run_id,
        state=run.state or "PENDING",
        steps=steps,
        error=_error_line(run.error),
        pipeline=spec.get("pipelineInfo", {}).get("name", ""),
        parameters=dict(run.runtime_config.parameters or {}) if run.runtime_config else {},
        created_at=run.created_at,
        finished_at=run.finished_at,
    )


class WaitTimedOut(Exception):
    def __init__(self, view: RunView, seconds: float):
        super().__init__(f"run {view.run_id} still {view.state} after {seconds:g}s")
        self.view = view


def follow_run(
    host: str,
    run_id: str,
    *,
    namespace: str | None = None,
    token: str | None = None,
    timeout: float | None = None,
    poll_seconds: float = 5.0,
    on_change: Callable[[RunView, list[Step]], None] = lambda view, changed: None,
) -> RunView:
    """Poll the run until it ends; `on_change(view, steps whose state changed)` after every change.
    Raises WaitTimedOut when `timeout` seconds pass first (the run goes on on the cluster)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    seen: dict[str, str] = {}
    last_state = ""
    with _talking_to(host):
        client = _client(host, namespace, token)
    while True:
        with _talking_to(host):
            view = view_of(client.get_run(run_id))
        changed = [s for s in view.steps if seen.get(s.name) != s.state]
        if changed or view.state != last_state:
            on_change(view, changed)
        seen.update({s.name: s.state for s in view.steps})
        last_state = view.state
        if view.state in DONE:
            return view
        if deadline is not None and time.monotonic() >= deadline:
            raise WaitTimedOut(view, timeout)
        time.sleep(
            poll_seconds if deadline is None else max(0.0, min(poll_seconds, deadline - time.monotonic()))
        )


def recent_runs(
    host: str, *, limit: int = 20, namespace: str | None = None, token: str | None = None
) -> list[RunView]:
    """The newest runs of this project's pipelines first."""
    if limit < 1:
        raise UserError(f"--limit {limit}: must be at least 1")
    with _talking_to(host):
        client = _client(host, namespace, token)
        response = client.list_runs(page_size=limit, sort_by="created_at desc", namespace=namespace)
    views = [view_of(run) for run in (response.runs or [])]
    return [v for v in views if not v.pipeline or v.pipeline in OUR_PIPELINES]


def published_version(view: RunView) -> str:
    """The version this run published: the one whose manifest records the run's id as `pipeline_run_id`
    (the push step writes it, from the pipeline's run id). '-' when the run published none (failed, or
    the model was unchanged), '?' when the base path cannot be read from here (e.g. a PVC path)."""
    from pathlib import Path

    from kfp_tfserving.components.common.storage import storage_for
    from kfp_tfserving.components.push_to_serving.versions import numeric_versions, read_manifest

    base = str(view.parameters.get("base_path", ""))
    if view.state != "SUCCEEDED" or not base:
        return "-"
    if "://" not in base and not Path(base).is_dir():
        return "?"
    try:
        storage = storage_for(base)
        for number in reversed(numeric_versions(storage, base)[-RECENT_VERSIONS:]):
            manifest = read_manifest(storage, base, number)
            if manifest is not None and manifest.source.get("pipeline_run_id") == view.run_id:
                return str(number)
    except UserError:
        return "?"
    return "-"
