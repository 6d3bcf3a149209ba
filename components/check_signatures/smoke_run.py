"""The runtime checks: ops registered (9), load and run (12), REST (13), warmup (15), all through the
serving oracle (a TF1 Session over the {serve} graph, restored by its saver_def, as the model server runs it).

They run inside fresh_check's process. A fresh process proves the model needs nothing the exporting process had (the source model, custom code,
ops registered by imported libraries); its op registry is the one plain TensorFlow has.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kfp_tfserving.components.check_signatures.findings import ERROR, WARNING, Finding, errors
from kfp_tfserving.components.check_signatures.graph_checks import unregistered_findings, used_op_names
from kfp_tfserving.components.check_signatures.rest_json import round_trip_findings
from kfp_tfserving.components.common.errors import UserError
from kfp_tfserving.components.common.formats.base import Tensors
from kfp_tfserving.components.common.formats.string_inputs import describe_string_inputs
from kfp_tfserving.components.common.samples import generate_inputs, load_sample
from kfp_tfserving.components.common.saved_model.proto import (
    SERVING_DEFAULT,
    meta_graph,
    read_saved_model_proto,
)
from kfp_tfserving.components.common.saved_model.tags import SERVE_TAG
from kfp_tfserving.components.common.saved_model.warmup import (
    WARMUP_FILE,
    WarmupError,
    read_warmup,
    warmup_batches,
    write_warmup,
)
from kfp_tfserving.components.common.serving_oracle import (
    REPAIR_FIX,
    ServedModel,
    ServingLoadError,
    ServingRunError,
)
from kfp_tfserving.components.common.tfenv import import_tensorflow

# Ops that decode a string input as a structured record: generated strings will not parse.
PARSING_OPS = {
    "ParseExample",
    "ParseExampleV2",
    "ParseSingleExample",
    "ParseSequenceExample",
    "ParseTensor",
    "DecodeProtoV2",
}


# Where the runtime checks' batch comes from, in order of preference.
USER_SAMPLE = "the sample"
WARMUP_REQUEST = "the warmup file's first request"
GENERATED = "generated inputs"


def _first_line(err: BaseException) -> str:
    if isinstance(err, UserError):
        return err.what
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


def _run_failure(meta, specs, err: Exception, origin: str) -> Finding:
    """An error naming what to do; a warning when generated strings cannot match what the model parses."""
    if origin != GENERATED:
        return Finding(
            "load-and-run",
            ERROR,
            f"running on {origin} failed: {_first_line(err)}",
            f"give a {origin} the model accepts (it must match the signature)",
            SERVING_DEFAULT,
        )
    opaque = [s.name for s in specs if s.dtype == "string" and not s.example_features and not s.image_format]
    parses = set(used_op_names(meta)) & PARSING_OPS
    if opaque and parses:
        return Finding(
            "load-and-run",
            WARNING,
            f"loaded, but not run: inputs {opaque} feed {sorted(parses)} and the generated strings are not "
            f"what it parses ({_first_line(err)})",
            "pass --sample with a real request, or ship a warmup file of real requests in assets.extra/",
            SERVING_DEFAULT,
        )
    strings = [s.name for s in specs if s.dtype == "string"]
    return Finding(
        "load-and-run",
        ERROR,
        f"running on generated inputs failed: {_first_line(err)}",
        f"pass --sample with a real request for inputs {strings}"
        if strings
        else "run the exported model on a batch like the signature describes and fix what fails",
        SERVING_DEFAULT,
    )


def _load_failure(err: ServingLoadError) -> Finding:
    code = {"restore": "restore-failed", "init": "init-op-failed"}.get(err.stage, "load-and-run")
    return Finding(code, ERROR, f"TF Serving's loader fails: {err.what}", err.fix or REPAIR_FIX)


def _replay(served: ServedModel, path: Path) -> tuple[int, list[Finding]]:
    try:
        requests = read_warmup(path)
    except WarmupError as err:
        return 0, [Finding("warmup", ERROR, f"{WARMUP_FILE}: {err}", "rewrite it or delete it to regenerate")]
    found = []
    for req in requests:
        name = req.signature or SERVING_DEFAULT
        try:
            served.replay(req)
        except ServingRunError as err:  # the server fails the whole version on this request
            found.append(
                Finding(
                    "warmup",
                    ERROR,
                    f"{WARMUP_FILE} record {req.index} fails, so TF Serving refuses the version: {err.what}",
                    "regenerate the warmup file from the current signature",
                    name,
                )
            )
    return len(requests), found


def smoke_run(
    model_dir: Path,
    write_missing_warmup: bool,
    repeats: int = 5,
    tags: tuple[str, ...] = (SERVE_TAG,),
    sample: Path | None = None,
    *,
    after_load: Callable[[], None] | None = None,
    then: Callable[[ServedModel, list[Finding]], None] | None = None,
) -> dict[str, Any]:
    """Load and run the model's `tags` graph through the serving oracle, as tensorflow_model_server would.

    The runtime checks run the user's sample when there is one, else the version's own warmup file's
    first request, and generated inputs only when neither exists: a request that passed the export's
    parity is never replaced by a guess.

    `after_load()` runs once the session is loaded, before anything is run or timed (the caller waits
    there for work it ran alongside the load). `then(served, findings)` runs after the checks, on the same
    session, with the findings so far: one load serves every use of the model in this process.
    """
    import_tensorflow()
    from tensorflow.python.framework import op_def_registry

    meta = meta_graph(read_saved_model_proto(model_dir), model_dir, tags)
    result: dict[str, Any] = {}
    findings: list[Finding] = []
    result["findings"] = findings
    unregistered = [op for op in used_op_names(meta) if op_def_registry.get(op) is None]
    findings += unregistered_findings(unregistered)
    if unregistered:
        if not findings:
            findings.append(
                Finding(
                    "load-and-run",
                    WARNING,
                    f"uses TF Text / TF-DF ops {unregistered} this TensorFlow does not register; not load-tested",
                    "install tensorflow-text / tensorflow-decision-forests where the check runs",
                    SERVING_DEFAULT,
                )
            )
        return result
    start = time.perf_counter()
    try:
        served = ServedModel(model_dir, tags)
    except ServingLoadError as err:
        findings.append(_load_failure(err))
        return result
    with served:
        result["load_seconds"] = time.perf_counter() - start
        if after_load is not None:
            after_load()
        _run_checks(served, meta, write_missing_warmup, repeats, result, findings, sample)
        if then is not None:
            then(served, findings)
    return result


def _first_request(warmup: Path) -> Tensors | None:
    """The first serving_default predict request of an existing warmup file, if it has one."""
    try:
        requests = read_warmup(warmup)
    except WarmupError:
        return None  # reported by the replay
    return next(
        (r.inputs for r in requests if r.kind == "predict" and r.signature in ("", SERVING_DEFAULT)),
        None,
    )


def _request_batch(served: ServedModel, specs, sample: Path | None) -> tuple[Tensors, str]:
    """(batch, where it comes from): the user's sample, else the warmup file's request, else generated."""
    if sample is not None:
        return load_sample(sample, specs), USER_SAMPLE
    warmup = served.model_dir / WARMUP_FILE
    recorded = _first_request(warmup) if warmup.exists() else None
    if recorded is not None:
        return recorded, WARMUP_REQUEST
    return generate_inputs(specs, 2), GENERATED


def _run_checks(
    served: ServedModel, meta, write_warmup_file: bool, repeats: int, result, findings, sample: Path | None
) -> None:
    missing = served.unrestored_variables()
    if missing:
        findings.append(
            Finding(
                "variables-not-restored",
                ERROR,
                f"the signatures read variables the saver_def never restores ({', '.join(missing[:3])}"
                f"{f' and {len(missing) - 3} more' if len(missing) > 3 else ''}); TF Serving fails every "
                "request with 'Could not find variable'",
                REPAIR_FIX,
                tensor=missing[0],
            )
        )
        return
    signature = served.signatures[SERVING_DEFAULT]
    specs = describe_string_inputs(meta, SERVING_DEFAULT, signature.inputs, served.model_dir)
    try:
        batch, origin = _request_batch(served, specs, sample)
    except UserError as err:
        findings.append(Finding("load-and-run", ERROR, err.what, err.fix or "", SERVING_DEFAULT))
        return
    result["inputs_from"] = origin
    ran = _run_and_time(served, batch, repeats, result, findings, meta, specs, origin)
    if not ran and errors(findings):
        return
    warmup = served.model_dir / WARMUP_FILE
    generated = False
    if ran and not warmup.exists() and write_warmup_file:
        if origin == USER_SAMPLE:  # the request that passed parity warms the server up
            batches = [batch]
        else:
            fixed = any(s.shape and s.shape[0] is not None for s in signature.inputs)
            batches = warmup_batches(functools.partial(generate_inputs, specs), fixed)
        write_warmup(warmup, SERVING_DEFAULT, batches)
        generated = True
    if warmup.exists():  # replayed even when generated inputs could not be run: real requests can
        records, warmup_findings = _replay(served, warmup)
        findings += warmup_findings
        result["warmup"] = {"file": WARMUP_FILE, "records": records, "generated": generated}


def _run_and_time(
    served: ServedModel, batch, repeats: int, result: dict, findings: list, meta, specs, origin: str
) -> bool:
    """Run serving_default on the batch, time it, and check its REST round trip; False if it failed."""
    try:
        outputs = served.predict(batch)
    except ServingRunError as err:
        if origin != WARMUP_REQUEST:  # a failing warmup request is the replay's finding, reported below
            findings.append(_run_failure(meta, specs, err, origin))
        return False
    latencies = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        served.predict(batch)
        latencies.append(time.perf_counter() - t0)
    result["median_latency_ms"] = statistics.median(latencies) * 1000
    result["output_shapes"] = {k: list(v.shape) for k, v in outputs.items()}
    findings += round_trip_findings(SERVING_DEFAULT, batch, outputs)
    return True
