"""The check's result: signatures, findings, runtime facts; crosses the process boundary as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from kfp_tfserving.components.check_signatures.findings import ERROR, WARNING, Finding, errors
from kfp_tfserving.components.common.saved_model.proto import SignatureInfo
from kfp_tfserving.components.common.saved_model.tensor_spec import TensorSpecInfo


@dataclass(frozen=True)
class WarmupFacts:
    file: str  # relative to the version: assets.extra/tf_serving_warmup_requests
    records: int
    generated: bool  # written by this check (the model had none)


@dataclass
class RuntimeFacts:
    """What the runtime checks measured; every field unset when the model was not loaded."""

    load_seconds: float | None = None
    median_latency_ms: float | None = None
    inputs_from: str = ""  # the sample, the warmup file's first request, or generated inputs
    output_shapes: dict[str, list[int]] | None = None
    warmup: WarmupFacts | None = None
    # batching.measure_and_write's result (curve, parameters, or why no file was written); a model that
    # passed only.
    batching: dict[str, Any] | None = None
    model_fingerprint: str = ""  # the push step's "same model?" hash; a model that passed only

    def as_dict(self) -> dict[str, Any]:
        """The set fields only (the report's JSON, as before the fields were typed)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) not in (None, "")}
        if self.warmup is not None:
            out["warmup"] = asdict(self.warmup)
        return out

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> RuntimeFacts:
        known = {f.name for f in fields(cls)}
        facts = cls(**{k: v for k, v in doc.items() if k in known and k != "warmup"})
        facts.warmup = WarmupFacts(**doc["warmup"]) if doc.get("warmup") else None
        return facts


@dataclass
class CheckReport:
    model_dir: Path
    signatures: dict[str, SignatureInfo]
    findings: list[Finding]
    runtime: RuntimeFacts = field(default_factory=RuntimeFacts)
    versions: dict[str, str] = field(default_factory=dict)  # serving: the server's TF; model: the writer's

    @property
    def passed(self) -> bool:
        return not errors(self.findings)

    def counts(self) -> dict[str, int]:
        return {sev: sum(f.severity == sev for f in self.findings) for sev in (ERROR, WARNING)}

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_dir": str(self.model_dir),
            "passed": self.passed,
            "signatures": {n: s.as_dict() for n, s in self.signatures.items()},
            "findings": [f.as_dict() for f in self.findings],
            "counts": self.counts(),
            "runtime": self.runtime.as_dict(),
            "versions": self.versions,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> CheckReport:
        def specs(tensors: dict[str, dict]) -> list[TensorSpecInfo]:
            return [
                TensorSpecInfo(
                    name,
                    t["dtype"],
                    None if t["shape"] is None else tuple(None if d == -1 else d for d in t["shape"]),
                )
                for name, t in tensors.items()
            ]

        signatures = {
            name: SignatureInfo(name, sig["method_name"], specs(sig["inputs"]), specs(sig["outputs"]))
            for name, sig in doc["signatures"].items()
        }
        findings = [Finding(**f) for f in doc["findings"]]
        return cls(
            Path(doc["model_dir"]),
            signatures,
            findings,
            RuntimeFacts.from_dict(doc.get("runtime", {})),
            doc.get("versions", {}),
        )
