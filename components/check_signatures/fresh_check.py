"""Every check, inside the fresh process: the protos as the model server reads them, then the runtime checks.

Run as `python -m kfp_tfserving.components.check_signatures.fresh_check REQUEST_JSON RESULT_JSON` by
runtime_check. Keeping all TensorFlow work here leaves the calling step free of TensorFlow's import cost,
and the process is fresh: nothing of the exporting step (the source model, custom code, op libraries it
loaded) is reachable, and its op registry is the one plain TensorFlow has.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kfp_tfserving.components.check_signatures.check_report import CheckReport
from kfp_tfserving.components.check_signatures.contract import Contract
from kfp_tfserving.components.check_signatures.findings import ERROR, Finding, errors
from kfp_tfserving.components.check_signatures.static_checks import STATIC_CHECKS, ModelView
from kfp_tfserving.components.check_signatures.version_check import target_version
from kfp_tfserving.components.common.errors import FormatError
from kfp_tfserving.components.common.formats.saved_model_io import SERVE_TAG, read_saved_model_proto

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

    With `batching` ({"budget_seconds", "serving_cpus"}), a model that passed also gets its measured
    batching_params.pbtxt in `staged`. `sample`: the user's request, run before anything generated.
    """
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
    if not {f.code for f in errors(findings)} & _NOT_RUNNABLE:
        from kfp_tfserving.components.check_signatures.smoke_run import smoke_run

        try:
            runtime = smoke_run(staged, write_missing_warmup=True, tags=tags, sample=sample)
            findings += runtime.pop("findings")
        except Exception as err:  # reported as a finding: the step's verdict, not a crash
            runtime = {}
            findings.append(_runtime_failure(err))
    if batching is not None and not errors(findings):
        from kfp_tfserving.components.check_signatures.batching import measure_and_write

        try:
            runtime["batching"] = measure_and_write(staged, **batching, tags=tags)
        except Exception as err:  # the model passed: a failed measurement only means no batching file
            runtime["batching"] = {
                "skipped": f"the sweep failed: {type(err).__name__}: {err}".splitlines()[0]
            }
    if not errors(findings):
        runtime["model_fingerprint"] = _fingerprint(staged)
    return CheckReport(model_dir, view.signatures, findings, runtime, versions)


def _fingerprint(staged: Path) -> str:
    """The push step's "same model?" hash, computed here where TensorFlow is already imported, so the push
    step needs no TensorFlow of its own; "" when it cannot be computed (the push then computes it)."""
    from kfp_tfserving.components.common.model_fingerprint import model_fingerprint

    try:
        return model_fingerprint(staged).digest
    except Exception:  # noqa: BLE001 - an optimisation only: the push falls back to its own
        return ""


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
