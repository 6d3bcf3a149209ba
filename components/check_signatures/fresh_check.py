"""Every check, inside the fresh process: the protos as the model server reads them, then the runtime checks.

Run as `python -m kfp_tfserving.components.check_signatures.fresh_check REQUEST_JSON RESULT_JSON` by
runtime_check. Keeping all TensorFlow work here leaves the calling step free of TensorFlow's import cost,
and the process is fresh: nothing of the exporting step (the source model, custom code, op libraries it
loaded) is reachable, and its op registry is the one plain TensorFlow has.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from kfp_tfserving.components.check_signatures.check_report import CheckReport
from kfp_tfserving.components.check_signatures.contract import Contract
from kfp_tfserving.components.check_signatures.findings import ERROR, Finding, errors
from kfp_tfserving.components.check_signatures.static_checks import STATIC_CHECKS, ModelView
from kfp_tfserving.components.check_signatures.version_check import target_version
from kfp_tfserving.components.common.errors import FormatError
from kfp_tfserving.components.common.saved_model.proto import read_saved_model_proto
from kfp_tfserving.components.common.saved_model.tags import SERVE_TAG
from kfp_tfserving.components.common.tfenv import import_tensorflow

# Without these there is nothing to load or call: the runtime checks would only repeat the finding. A
# denied op must not run at all (it would write files or call Python in this process).
_NOT_RUNNABLE = {
    "unreadable-saved-model",
    "no-serve-tag",
    "no-serving-default",
    "missing-variables",
    "signature-tensor-missing",
    "init-op-missing",
    "denied-op",
}


def _runtime_failure(err: BaseException) -> Finding:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return Finding(
        "load-and-run",
        ERROR,
        f"the runtime checks failed: {type(err).__name__}: {text}",
        "make the model self-contained (no custom ops or files outside the SavedModel)",
    )


def check_here(
    model_dir: Path,
    staged: Path,
    contract: Contract | None,
    serving_tf_version: str,
    batching: dict | None = None,
    tags: tuple[str, ...] = (SERVE_TAG,),
    sample: Path | None = None,
) -> CheckReport:
    """The whole check in this process; the model is loaded, run and given its warmup file in `staged`.

    With `batching` ({"budget_seconds", "serving_cpus"[, "write"]}), a model that passed is swept and
    load-tested (batching.measure_and_write), and gets batching_params.pbtxt in `staged` when batching pays. `sample`: the user's request, run before anything generated.
    """
    started = time.perf_counter()
    target = target_version(serving_tf_version)
    try:
        proto = read_saved_model_proto(model_dir)
    except FormatError as err:
        finding = Finding("unreadable-saved-model", ERROR, err.what, err.fix or "export the model again")
        return CheckReport(model_dir, {}, [finding], versions={"serving": target})
    view = ModelView(model_dir, proto, contract, target, tags)
    findings = [finding for check in STATIC_CHECKS for finding in check(view)]
    versions = {"serving": target, "model": view.serve.meta_info_def.tensorflow_version if view.serve else ""}
    runtime: dict = {}
    # The model fingerprint hashes every checkpoint value: on the other core while the oracle restores the
    # same file, done before anything is run or timed. Used only if the model passes.
    fingerprint = _Fingerprint(staged) if not errors(findings) else None
    sweep: dict = {}
    timings = {"static_checks": time.perf_counter() - started}  # TensorFlow's import included

    def measure_batching(served, run_findings: list[Finding]) -> None:
        if batching is not None and not errors([*findings, *run_findings]):
            timings["runtime_checks"] = time.perf_counter() - started - timings["static_checks"]
            sweep.update(_measure_batching(staged, batching, tags, served))
            timings["batching_sweep"] = time.perf_counter() - started - sum(timings.values())

    if not {f.code for f in errors(findings)} & _NOT_RUNNABLE:
        from kfp_tfserving.components.check_signatures.smoke_run import smoke_run

        wait = fingerprint.wait if fingerprint else None
        try:
            runtime = smoke_run(
                staged,
                write_missing_warmup=True,
                tags=tags,
                sample=sample,
                after_load=wait,
                then=measure_batching,
            )
            findings += runtime.pop("findings")
            timings.setdefault("runtime_checks", time.perf_counter() - started - timings["static_checks"])
        except Exception as err:  # reported as a finding: the step's verdict, not a crash
            runtime = {}
            findings.append(_runtime_failure(err))
    if fingerprint:
        fingerprint.wait()  # finished before a sweep of its own is timed, and before its digest is read
    if batching is not None and not errors(findings):
        # The runtime checks' session measured it; else (not loaded, e.g. ops this TensorFlow lacks) a
        # session of its own, whose failure becomes the reason no file was written.
        runtime["batching"] = sweep or _measure_batching(staged, batching, tags, None)
    if not errors(findings) and fingerprint:
        runtime["model_fingerprint"] = fingerprint.digest
    if runtime:  # where this process's time went (the benchmarks' breakdown reads it)
        runtime["timings_seconds"] = {k: round(v, 3) for k, v in timings.items()}
    return CheckReport(model_dir, view.signatures, findings, runtime, versions)


def _measure_batching(staged: Path, batching: dict, tags: tuple[str, ...], served) -> dict:
    from kfp_tfserving.components.check_signatures.batching import measure_and_write

    try:
        return measure_and_write(staged, **batching, tags=tags, served=served)
    except Exception as err:  # the model passed: a failed measurement only means no batching file
        return {"skipped": f"the sweep failed: {type(err).__name__}: {err}".splitlines()[0]}


class _Fingerprint:
    """The push step's "same model?" hash (model_fingerprint), computed here where TensorFlow is imported,
    so the push step needs no TensorFlow of its own; in a thread from the start, `digest` after `wait()`.
    "" when it cannot be computed (the push then computes it)."""

    def __init__(self, staged: Path):
        import_tensorflow()  # imported here, not raced between two threads
        self.digest = ""
        self._thread = threading.Thread(
            target=self._run, args=(staged,), name="model-fingerprint", daemon=True
        )
        self._thread.start()

    def _run(self, staged: Path) -> None:
        from kfp_tfserving.components.common.saved_model.fingerprint import model_fingerprint

        try:
            self.digest = model_fingerprint(staged).digest
        except Exception:  # noqa: BLE001 - an optimisation only: the push falls back to its own
            self.digest = ""

    def wait(self) -> None:
        self._thread.join()


def main() -> None:
    request = json.loads(Path(sys.argv[1]).read_text())
    report = check_here(
        Path(request["model_dir"]),
        Path(request["staged"]),
        request["contract"],
        request["serving_tf_version"],
        request.get("batching"),
        tuple(request.get("tags") or (SERVE_TAG,)),
        Path(request["sample"]) if request.get("sample") else None,
    )
    Path(sys.argv[2]).write_text(json.dumps(report.as_dict()))


if __name__ == "__main__":
    main()
