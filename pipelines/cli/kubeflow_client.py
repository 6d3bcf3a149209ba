"""Submitting and scheduling the compiled pipelines on a Kubeflow Pipelines API server (kfp.Client).

No click here: the CLI in cli_kubeflow.py parses the command line and calls these.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import warnings
from pathlib import Path
from typing import Any

import yaml

from kfp_tfserving.components.common.errors import UserError

_CRON_FIELDS = (  # KFP's scheduler takes six fields, seconds first: name, low, high, names
    ("second", 0, 59, ()),
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day-of-week", 0, 6, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)
_TERM = re.compile(r"^(?P<range>\*|\?|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/(?P<step>\d+))?$")
_CRON_FIX = "KFP wants six fields: second minute hour day-of-month month day-of-week, e.g. '0 0 2 * * *' (02:00 daily)"


def _cron_value(text: str, low: int, names: tuple[str, ...]) -> int:
    if text.upper() in names:
        return names.index(text.upper()) + low
    if not text.isdigit():
        raise ValueError(text)
    return int(text)


def validate_cron(expression: str) -> str:
    """The expression, normalised to single spaces, or UserError saying which field is wrong."""
    fields = expression.split()
    if len(fields) != 6:
        raise UserError(f"--cron {expression!r}: {len(fields)} field(s), not 6", _CRON_FIX)
    for text, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for term in text.split(","):
            match = _TERM.match(term)
            bad = UserError(f"--cron {expression!r}: the {name} field {text!r} is not valid", _CRON_FIX)
            if not match:
                raise bad
            span, step = match.group("range"), match.group("step")
            if step is not None and int(step) < 1:
                raise bad
            if span == "?" and name not in ("day-of-month", "day-of-week"):
                raise bad
            if span in ("*", "?"):
                continue
            try:
                bounds = [_cron_value(part, low, names) for part in span.split("-")]
            except ValueError:
                raise bad from None
            if not all(low <= b <= high for b in bounds) or bounds[0] > bounds[-1]:
                raise UserError(
                    f"--cron {expression!r}: the {name} field {text!r} is outside {low}-{high}", _CRON_FIX
                )
    return " ".join(fields)


def committed_pipelines() -> dict[str, Path]:
    from kfp_tfserving.pipelines.cli.compile import PIPELINE_MODULES, pipeline_yaml

    names = [module.rsplit(".", 1)[1] for module in PIPELINE_MODULES]
    return {name: pipeline_yaml(name) for name in names}


def resolve_pipeline(name_or_path: str) -> Path:
    """A committed pipeline's name (export_to_serving, ...) or the path of a compiled pipeline YAML."""
    known = committed_pipelines()
    if name_or_path in known:
        return known[name_or_path]
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    raise UserError(
        f"{name_or_path}: neither a committed pipeline nor a compiled pipeline YAML file",
        f"use one of {', '.join(known)} or the path of a .yaml file",
    )


def _pipeline_inputs(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The root's parameters and its artifact inputs, from the pipeline document (the first YAML doc)."""
    try:
        doc = next(yaml.safe_load_all(path.read_text()))
        root = doc["root"].get("inputDefinitions", {})
    except (yaml.YAMLError, KeyError, TypeError, StopIteration):
        raise UserError(f"{path}: not a compiled KFP pipeline", "compile it with kfp's Compiler") from None
    return root.get("parameters", {}), list(root.get("artifacts", {}))


def _typed(name: str, raw: str, kind: str) -> Any:
    try:
        if kind == "NUMBER_INTEGER":
            return int(raw)
        if kind == "NUMBER_DOUBLE":
            return float(raw)
        if kind == "BOOLEAN":
            lowered = raw.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return lowered in ("true", "1", "yes")
        if kind == "LIST":
            if raw.strip().startswith("["):
                value = json.loads(raw)
                if not isinstance(value, list):
                    raise ValueError(raw)
                return value
            return [item.strip() for item in raw.split(",") if item.strip()]
        if kind == "STRUCT":
            value = json.loads(raw)
            if not isinstance(value, dict):
                raise ValueError(raw)
            return value
    except ValueError:
        raise UserError(
            f"-p {name}={raw}: not a valid {kind.lower()}", f"give {name} a {kind.lower()}"
        ) from None
    return raw


def pipeline_arguments(path: Path, pairs: tuple[str, ...]) -> dict[str, Any]:
    """`name=value` pairs typed by the pipeline's declared parameters; every required one must be there."""
    params, artifacts = _pipeline_inputs(path)
    if artifacts:
        raise UserError(
            f"{path.name}: takes artifact input(s) {', '.join(artifacts)}, which a run cannot be given",
            "use it as a sub-pipeline after a step that produces them (see retrain_and_export)",
        )
    arguments: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise UserError(f"-p {pair!r}: expected NAME=VALUE", "e.g. -p base_path=/models/emotion")
        if name not in params:
            raise UserError(
                f"-p {name}: {path.name} has no such parameter", f"its parameters: {', '.join(params)}"
            )
        arguments[name] = _typed(name, raw, params[name].get("parameterType", "STRING"))
    missing = [n for n, spec in params.items() if n not in arguments and not spec.get("isOptional")]
    if missing:
        raise UserError(
            f"{path.name}: missing parameter(s) {', '.join(missing)}", "give each with -p NAME=VALUE"
        )
    return arguments


def _client(host: str, namespace: str | None, token: str | None):
    import kfp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return kfp.Client(host=host, namespace=namespace or "kubeflow", existing_token=token or None)


@contextlib.contextmanager
def _talking_to(host: str):
    """kfp.Client prints links and raises library errors; turn both into our own one-line messages."""
    import urllib3
    from kfp_server_api.exceptions import ApiException

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    except ApiException as err:
        raise UserError(
            f"{host}: the KFP API answered {err.status} {err.reason}", "check --host, --namespace and access"
        ) from None
    except (urllib3.exceptions.HTTPError, OSError, TimeoutError) as err:
        reason = " ".join(str(err).split())[:200]
        raise UserError(f"{host}: cannot reach the KFP API ({reason})", "check --host") from None


def submit_run(
    host: str,
    pipeline: Path,
    arguments: dict[str, Any],
    *,
    experiment: str,
    run_name: str | None = None,
    namespace: str | None = None,
    token: str | None = None,
) -> dict[str, str]:
    with _talking_to(host):
        client = _client(host, namespace, token)
        result = client.create_run_from_pipeline_package(
            str(pipeline),
            arguments=arguments,
            run_name=run_name,
            experiment_name=experiment,
            namespace=namespace,
        )
    return {"run_id": result.run_id, "url": f"{host.rstrip('/')}/#/runs/details/{result.run_id}"}


def schedule_run(
    host: str,
    pipeline: Path,
    arguments: dict[str, Any],
    *,
    cron: str,
    experiment: str,
    job_name: str,
    catchup: bool = False,
    namespace: str | None = None,
    token: str | None = None,
) -> dict[str, str]:
    cron = validate_cron(cron)
    with _talking_to(host):
        client = _client(host, namespace, token)
        experiment_id = client.create_experiment(name=experiment, namespace=namespace).experiment_id
        recurring = client.create_recurring_run(
            experiment_id=experiment_id,
            job_name=job_name,
            cron_expression=cron,
            # Two retrain-and-publish runs at once would race for the next version number.
            max_concurrency=1,
            no_catchup=not catchup,
            params=arguments,
            pipeline_package_path=str(pipeline),
        )
    rid = recurring.recurring_run_id
    return {"recurring_run_id": rid, "url": f"{host.rstrip('/')}/#/recurringrun/details/{rid}"}
