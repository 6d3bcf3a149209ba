"""The runtime checks, on a model loaded through the serving oracle as tensorflow_model_server loads it:
ops registered (9), variables restored, one request run and timed with its REST round trip (12, 13), the
warmup file written and replayed (15). check_session.py runs them, in order, on the one loaded model.
"""

from __future__ import annotations

import functools
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from kfp_tfserving.components.check_signatures.check_report import WarmupFacts
from kfp_tfserving.components.check_signatures.findings import ERROR, WARNING, Finding
from kfp_tfserving.components.check_signatures.graph_checks import unregistered_findings, used_op_names
from kfp_tfserving.components.check_signatures.rest_json import round_trip_findings
from kfp_tfserving.components.common.errors import UserError, first_line
from kfp_tfserving.components.common.formats.string_inputs import describe_string_inputs
from kfp_tfserving.components.common.samples import generate_inputs, load_sample
from kfp_tfserving.components.common.saved_model.proto import SERVING_DEFAULT
from kfp_tfserving.components.common.saved_model.tags import Tags
from kfp_tfserving.components.common.saved_model.tensor_spec import Tensors, TensorSpecInfo
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
    unrestored_variables_problem,
)
from kfp_tfserving.components.common.tf_c_api import registered_op_names

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


def _run_failure(meta, specs, err: Exception, origin: str) -> Finding:
    """An error naming what to do; a warning when generated strings cannot match what the model parses."""
    if origin != GENERATED:
        return Finding(
            "load-and-run",
            ERROR,
            f"running on {origin} failed: {first_line(err)}",
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
            f"what it parses ({first_line(err)})",
            "pass --sample with a real request, or ship a warmup file of real requests in assets.extra/",
            SERVING_DEFAULT,
        )
    strings = [s.name for s in specs if s.dtype == "string"]
    return Finding(
        "load-and-run",
        ERROR,
        f"running on generated inputs failed: {first_line(err)}",
        f"pass --sample with a real request for inputs {strings}"
        if strings
        else "run the exported model on a batch like the signature describes and fix what fails",
        SERVING_DEFAULT,
    )


def unregistered_ops(meta) -> tuple[bool, list[Finding]]:
    """(whether the model can be loaded here, findings): every op must be registered in this clean process."""
    registered = registered_op_names()
    unregistered = [op for op in used_op_names(meta) if op not in registered]
    findings = unregistered_findings(unregistered)
    if unregistered and not findings:  # only TF Text / TF-DF ops: the server may have them linked
        findings.append(
            Finding(
                "load-and-run",
                WARNING,
                f"uses TF Text / TF-DF ops {unregistered} this TensorFlow does not register; not load-tested",
                "install tensorflow-text / tensorflow-decision-forests where the check runs",
                SERVING_DEFAULT,
            )
        )
    return not unregistered, findings


def load(model_dir: Path, tags: Tags) -> tuple[ServedModel | None, float, list[Finding]]:
    """(the loaded model or None, load seconds, findings): restore and init op, as the model server runs them."""
    start = time.perf_counter()
    try:
        served = ServedModel(model_dir, tags)
    except ServingLoadError as err:
        return None, 0.0, [load_failure(err)]
    return served, time.perf_counter() - start, []


def load_failure(err: ServingLoadError) -> Finding:
    """The C++ loader's refusal as a finding; the divergence classes it names get their own code."""
    code = {"restore": "restore-failed", "init": "init-op-failed"}.get(err.stage, "load-and-run")
    fix = err.fix or REPAIR_FIX
    if "Cannot assign a device" in err.what:  # exported on a GPU machine or for a cluster job
        code = "device-pinned"
        fix = (
            "export again with its devices cleared (the TF1 Builder's clear_devices=True), or serve it "
            "where those devices exist"
        )
    elif "fed more than once" in err.what:
        code = "duplicate-asset"
    return Finding(code, ERROR, f"TF Serving's loader fails: {err.what}", fix)


def variables_restored(served: ServedModel) -> list[Finding]:
    missing = served.unrestored_variables()
    if not missing:
        return []
    return [
        Finding(
            "variables-not-restored",
            ERROR,
            unrestored_variables_problem(missing),
            REPAIR_FIX,
            tensor=missing[0],
        )
    ]


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


@dataclass
class Request:
    """The serving_default batch the runtime checks run, and where it comes from."""

    specs: list[TensorSpecInfo]
    batch: Tensors
    origin: str  # USER_SAMPLE, WARMUP_REQUEST or GENERATED


def request_batch(served: ServedModel, sample: Path | None) -> tuple[Request | None, list[Finding]]:
    """The user's sample, else the warmup file's request, else generated inputs; a sample that does not
    fit the signature is a finding."""
    signature = served.signatures[SERVING_DEFAULT]
    specs = describe_string_inputs(served.meta, SERVING_DEFAULT, signature.inputs, served.model_dir)
    try:
        if sample is not None:
            return Request(specs, load_sample(sample, specs), USER_SAMPLE), []
    except UserError as err:
        return None, [Finding("load-and-run", ERROR, err.what, err.fix or "", SERVING_DEFAULT)]
    warmup = served.model_dir / WARMUP_FILE
    recorded = _first_request(warmup) if warmup.exists() else None
    if recorded is not None:
        return Request(specs, recorded, WARMUP_REQUEST), []
    return Request(specs, generate_inputs(specs, 2), GENERATED), []


@dataclass
class Ran:
    median_latency_ms: float
    output_shapes: dict[str, list[int]]


def run_and_time(served: ServedModel, request: Request, repeats: int = 5) -> tuple[Ran | None, list[Finding]]:
    """Run serving_default on the batch, time it, and check its REST round trip; None if it failed."""
    try:
        outputs = served.predict(request.batch)
    except ServingRunError as err:
        if request.origin == WARMUP_REQUEST:  # the replay reports a failing warmup request
            return None, []
        return None, [_run_failure(served.meta, request.specs, err, request.origin)]
    latencies = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        served.predict(request.batch)
        latencies.append(time.perf_counter() - t0)
    ran = Ran(statistics.median(latencies) * 1000, {k: list(v.shape) for k, v in outputs.items()})
    return ran, round_trip_findings(SERVING_DEFAULT, request.batch, outputs)


def write_missing_warmup(served: ServedModel, request: Request) -> bool:
    """Write the warmup file when the version has none: the user's sample (the request that passed parity)
    or generated batches of sizes 1 and 2. True if written."""
    warmup = served.model_dir / WARMUP_FILE
    if warmup.exists():
        return False
    if request.origin == USER_SAMPLE:
        batches = [request.batch]
    else:
        signature = served.signatures[SERVING_DEFAULT]
        fixed = any(s.shape and s.shape[0] is not None for s in signature.inputs)
        batches = warmup_batches(functools.partial(generate_inputs, request.specs), fixed)
    write_warmup(warmup, SERVING_DEFAULT, batches)
    return True


def warmup_replayed(served: ServedModel, generated: bool) -> tuple[WarmupFacts | None, list[Finding]]:
    """Replay the warmup file as the server does at load (one failing record fails the version)."""
    if not (served.model_dir / WARMUP_FILE).exists():
        return None, []
    try:
        records = served.replay_warmup()
    except ServingLoadError as err:
        return None, [Finding("warmup", ERROR, err.what, err.fix or "", SERVING_DEFAULT)]
    return WarmupFacts(WARMUP_FILE, records, generated), []
