"""The check step's session: every check on one SavedModel, in order, inside one fresh process.

Run as `python -m kfp_tfserving.components.check_signatures.check_session REQUEST_JSON RESULT_JSON` by
check_step.py. The process is fresh: nothing of the exporting step (the source model, custom code, op
libraries it loaded) is reachable, its op registry is the one TensorFlow's C library has (as in a model
server: no op that only TensorFlow's Python runtime registers), and its working directory is empty. The
process never imports TensorFlow's Python runtime (about 3 s and 200 MB): it reads the protos with
protobuf, runs the model through the C API (the tf_c_api package), and reads records and checkpoints with
TensorFlow's own C++ readers.

CheckSession.run(), in order:
  1. the protos as the model server reads them at load: static_checks.STATIC_CHECKS (variables, tag-set,
     signatures, graph references, dense tensors, dtypes, batch dimension, names, signature rules, ops,
     TensorFlow version, files outside assets/, the contract);
  2. ops registered in this clean TensorFlow            (runtime_checks.unregistered_ops)
  3. the load: restore and init op, as the server runs  (runtime_checks.load)
  4. every variable the signatures read restored         (runtime_checks.variables_restored)
  5. one serving_default request, timed, and its REST round trip: the user's sample, else the warmup
     file's first request, else generated inputs         (runtime_checks.request_batch, run_and_time)
  6. the warmup file written when missing, and replayed as the server replays it
                                                         (runtime_checks.write_missing_warmup, warmup_replayed)
The verdict is the findings. Only for a model that passed, afterwards: the model fingerprint (hashed on a
thread beside the load) and the batching measurement (batching.py) on the same loaded model.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from kfp_tfserving.components.check_signatures import runtime_checks
from kfp_tfserving.components.check_signatures.check_report import CheckReport, RuntimeFacts
from kfp_tfserving.components.check_signatures.contract import Contract
from kfp_tfserving.components.check_signatures.findings import ERROR, Finding, errors
from kfp_tfserving.components.check_signatures.static_checks import STATIC_CHECKS, ModelView
from kfp_tfserving.components.check_signatures.version_check import target_version
from kfp_tfserving.components.common.errors import FormatError, first_line
from kfp_tfserving.components.common.saved_model.proto import read_saved_model_proto
from kfp_tfserving.components.common.saved_model.tags import SERVE, Tags
from kfp_tfserving.components.common.serving_oracle import ServedModel
from kfp_tfserving.components.common.tfenv import quiet_environment

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
SELF_CONTAINED_FIX = "make the model self-contained (no custom ops or files outside the SavedModel)"


@dataclass(frozen=True)
class Batching:
    """The batching measurement asked for: its time budget, the model server's CPUs (0: this machine's),
    and whether batching_params.pbtxt is written when batching pays (`check --batching` only reports)."""

    budget_seconds: float
    serving_cpus: int = 0
    write: bool = True


@dataclass(frozen=True)
class CheckRequest:
    """What the step asks the session to check; crosses the process boundary as JSON."""

    model_dir: Path  # the model as the user named it (reports name it)
    staged: Path  # the copy that is loaded, run and given its warmup (and batching) file
    contract: Contract | None = None
    serving_tf_version: str = ""
    tags: Tags = SERVE
    sample: Path | None = None
    batching: Batching | None = None

    def to_json(self) -> str:
        doc = asdict(self)
        doc.update(model_dir=str(self.model_dir.resolve()), staged=str(self.staged.resolve()))
        doc["sample"] = str(self.sample.resolve()) if self.sample else ""
        return json.dumps(doc)

    @classmethod
    def from_json(cls, text: str) -> CheckRequest:
        doc = json.loads(text)
        return cls(
            Path(doc["model_dir"]),
            Path(doc["staged"]),
            doc["contract"],
            doc["serving_tf_version"],
            tuple(doc["tags"]),
            Path(doc["sample"]) if doc["sample"] else None,
            Batching(**doc["batching"]) if doc["batching"] else None,
        )


@dataclass
class CheckOutcome:
    """The report, and where the session's time went (for the step's log and the benchmarks, not the
    model's metadata)."""

    report: CheckReport
    phase_seconds: dict[str, float]


class CheckSession:
    """One check of one model: owns the model loaded through the serving oracle while the checks run."""

    def __init__(self, request: CheckRequest):
        self.request = request
        self.findings: list[Finding] = []
        self.facts = RuntimeFacts()
        self.phase_seconds: dict[str, float] = {}
        self._clock = time.perf_counter()

    def run(self) -> CheckOutcome:
        request = self.request
        versions = {"serving": target_version(request.serving_tf_version)}
        try:
            proto = read_saved_model_proto(request.model_dir)
        except FormatError as err:
            finding = Finding("unreadable-saved-model", ERROR, err.what, err.fix or "export the model again")
            return CheckOutcome(CheckReport(request.model_dir, {}, [finding], versions=versions), {})
        view = ModelView(request.model_dir, proto, request.contract, versions["serving"], request.tags)
        versions["model"] = view.serve.meta_info_def.tensorflow_version if view.serve else ""
        self.findings += [finding for check in STATIC_CHECKS for finding in check(view)]
        self._phase("static_checks")
        if not {f.code for f in errors(self.findings)} & _NOT_RUNNABLE:
            self._runtime_checks(view.serve)
        report = CheckReport(request.model_dir, view.signatures, self.findings, self.facts, versions)
        return CheckOutcome(report, {k: round(v, 3) for k, v in self.phase_seconds.items()})

    def _runtime_checks(self, meta) -> None:
        fingerprint = _Fingerprint(self.request.staged) if not errors(self.findings) else None
        served = None
        try:
            runnable, found = runtime_checks.unregistered_ops(meta)
            self.findings += found
            if runnable:
                served, self.facts.load_seconds, found = runtime_checks.load(
                    self.request.staged, self.request.tags
                )
                self.findings += found
            if served is not None:
                if fingerprint:
                    fingerprint.wait()  # hashed beside the restore; finished before anything is timed
                self._run_served(served)
        except Exception as err:  # reported as a finding: the step's verdict, not a crash
            self.facts = RuntimeFacts()
            self.findings.append(
                Finding(
                    "load-and-run", ERROR, f"the runtime checks failed: {first_line(err)}", SELF_CONTAINED_FIX
                )
            )
            served = served.close() if served is not None else None
        self._phase("runtime_checks")
        try:
            self._after_the_verdict(served, fingerprint)
        finally:
            if served is not None:
                served.close()

    def _run_served(self, served: ServedModel) -> None:
        found = runtime_checks.variables_restored(served)
        self.findings += found
        if found:
            return
        request, found = runtime_checks.request_batch(served, self.request.sample)
        self.findings += found
        if request is None:
            return
        self.facts.inputs_from = request.origin
        ran, found = runtime_checks.run_and_time(served, request)
        self.findings += found
        if ran is not None:
            self.facts.median_latency_ms, self.facts.output_shapes = ran.median_latency_ms, ran.output_shapes
        elif errors(self.findings):
            return
        # Replayed even when generated inputs could not be run: real requests can.
        generated = ran is not None and runtime_checks.write_missing_warmup(served, request)
        self.facts.warmup, found = runtime_checks.warmup_replayed(served, generated)
        self.findings += found

    def _after_the_verdict(self, served: ServedModel | None, fingerprint: _Fingerprint | None) -> None:
        """For a model that passed: its fingerprint, then the batching measurement on the loaded model (or,
        when it was not loaded here, e.g. ops this TensorFlow lacks, a load of its own)."""
        if fingerprint:
            fingerprint.wait()
        if errors(self.findings):
            return
        self.facts.model_fingerprint = fingerprint.digest if fingerprint else ""
        batching = self.request.batching
        if batching is None:
            return
        from kfp_tfserving.components.check_signatures.batching import measure_and_write

        try:
            self.facts.batching = measure_and_write(
                self.request.staged, batching.budget_seconds, batching.serving_cpus, tags=self.request.tags,
                served=served, write=batching.write,
            )  # fmt: skip
        except Exception as err:  # the model passed: a failed measurement only means no batching file
            self.facts.batching = {"skipped": f"the sweep failed: {first_line(err)}"}
        self._phase("batching_sweep")

    def _phase(self, name: str) -> None:
        now = time.perf_counter()
        self.phase_seconds[name] = now - self._clock
        self._clock = now


class _Fingerprint:
    """The push step's "same model?" hash (saved_model/fingerprint.py), computed here where TensorFlow is
    imported, so the push step needs no TensorFlow of its own; in a thread from the start, `digest` after
    `wait()`. "" when it cannot be computed (the push then computes it)."""

    def __init__(self, staged: Path):
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
    quiet_environment()  # before TensorFlow's library loads, through whichever module loads it first
    outcome = CheckSession(CheckRequest.from_json(Path(sys.argv[1]).read_text())).run()
    result = {"report": outcome.report.as_dict(), "phase_seconds": outcome.phase_seconds}
    Path(sys.argv[2]).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
