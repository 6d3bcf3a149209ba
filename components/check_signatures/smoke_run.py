"""The runtime checks: ops registered (9), load and run (12), REST (13), warmup (15).

They run inside fresh_check's process. A fresh process proves the model needs nothing the exporting process had (the source model, custom code,
ops registered by imported libraries); its op registry is the one plain TensorFlow has.
"""

from __future__ import annotations

import functools
import statistics
import time
from pathlib import Path
from typing import Any

from kfp_tfserving.components.check_signatures.findings import ERROR, WARNING, Finding, errors
from kfp_tfserving.components.check_signatures.graph_checks import unregistered_findings, used_op_names
from kfp_tfserving.components.check_signatures.rest_json import round_trip_findings
from kfp_tfserving.components.check_signatures.tf_examples import with_example_features
from kfp_tfserving.components.check_signatures.warmup import (
    WARMUP_FILE,
    WarmupError,
    read_warmup,
    warmup_batches,
    write_warmup,
)
from kfp_tfserving.components.common.formats.saved_model_io import (
    SERVING_DEFAULT,
    read_saved_model_proto,
    serve_meta_graph,
    signatures_of,
)
from kfp_tfserving.components.common.samples import generate_inputs
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


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


def _run_failure(meta, specs, err: Exception) -> Finding:
    """An error, unless the model parses its string input in a way the generated strings cannot match."""
    opaque = [s.name for s in specs if s.dtype == "string" and not s.example_features]
    parses = set(used_op_names(meta)) & PARSING_OPS
    if opaque and parses:
        return Finding(
            "load-and-run",
            WARNING,
            f"loaded, but not run: inputs {opaque} feed {sorted(parses)} and the generated strings are not "
            f"what it parses ({_first_line(err)})",
            "ship a warmup file of real requests in assets.extra/ so the check replays them",
            SERVING_DEFAULT,
        )
    return Finding(
        "load-and-run",
        ERROR,
        f"running on generated inputs failed: {_first_line(err)}",
        "run the exported model on a batch like the signature describes and fix what fails",
        SERVING_DEFAULT,
    )


def _call(tf, fn, inputs):
    result = fn(**{k: tf.constant(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in result.items()}


def _replay(tf, loaded, signatures: dict, path: Path) -> tuple[int, list[Finding]]:
    try:
        requests = read_warmup(path)
    except WarmupError as err:
        return 0, [Finding("warmup", ERROR, f"{WARMUP_FILE}: {err}", "rewrite it or delete it to regenerate")]
    found = []
    for req in requests:
        name = req.signature or SERVING_DEFAULT
        where = f"{WARMUP_FILE} record {req.index}"
        if name not in signatures:
            found.append(
                Finding("warmup", ERROR, f"{where} calls unknown signature '{name}'", "fix the file", name)
            )
            continue
        expected = sorted(s.name for s in signatures[name].inputs)
        if sorted(req.inputs) != expected:
            found.append(
                Finding(
                    "warmup",
                    ERROR,
                    f"{where} sends inputs {sorted(req.inputs)}, the signature takes {expected}",
                    "regenerate the warmup file from the current signature",
                    name,
                )
            )
            continue
        try:
            _call(tf, loaded.signatures[name], req.inputs)
        except Exception as err:  # the server fails the version on this request
            found.append(
                Finding(
                    "warmup", ERROR, f"{where} fails: {_first_line(err)}", "regenerate the warmup file", name
                )
            )
    return len(requests), found


def smoke_run(model_dir: Path, write_missing_warmup: bool, repeats: int = 5) -> dict[str, Any]:
    tf = import_tensorflow()
    from tensorflow.python.framework import op_def_registry

    meta = serve_meta_graph(read_saved_model_proto(model_dir), model_dir)
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
    signatures = signatures_of(meta)
    start = time.perf_counter()
    try:
        loaded = tf.saved_model.load(str(model_dir), tags=["serve"])
    except Exception as err:
        findings.append(
            Finding(
                "load-and-run",
                ERROR,
                f"loading in a fresh process failed: {_first_line(err)}",
                "make the model self-contained (no custom ops or files outside the SavedModel)",
            )
        )
        return result
    result["load_seconds"] = time.perf_counter() - start
    signature = signatures[SERVING_DEFAULT]
    fn = loaded.signatures[SERVING_DEFAULT]
    specs = with_example_features(meta, signature.inputs)
    make = functools.partial(generate_inputs, specs)
    ran = _run_and_time(tf, fn, make(2), repeats, result, findings, meta, specs)
    if not ran and errors(findings):
        return result
    warmup = model_dir / WARMUP_FILE
    generated = False
    if ran and not warmup.exists() and write_missing_warmup:
        fixed = any(s.shape and s.shape[0] is not None for s in signature.inputs)
        write_warmup(warmup, SERVING_DEFAULT, warmup_batches(make, fixed))
        generated = True
    if warmup.exists():  # replayed even when generated inputs could not be run: real requests can
        records, warmup_findings = _replay(tf, loaded, signatures, warmup)
        findings += warmup_findings
        result["warmup"] = {"file": WARMUP_FILE, "records": records, "generated": generated}
    return result


def _run_and_time(tf, fn, batch, repeats: int, result: dict, findings: list, meta, specs) -> bool:
    """Run serving_default on the batch, time it, and check its REST round trip; False if it failed."""
    try:
        outputs = _call(tf, fn, batch)
    except Exception as err:
        findings.append(_run_failure(meta, specs, err))
        return False
    latencies = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(**{k: tf.constant(v) for k, v in batch.items()})
        latencies.append(time.perf_counter() - t0)
    result["median_latency_ms"] = statistics.median(latencies) * 1000
    result["output_shapes"] = {k: list(v.shape) for k, v in outputs.items()}
    findings += round_trip_findings(SERVING_DEFAULT, batch, outputs)
    return True
