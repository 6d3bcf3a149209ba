"""The check's result: signatures, findings, runtime figures; crosses the process boundary as JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfp_tfserving.components.check_signatures.findings import ERROR, WARNING, Finding, errors
from kfp_tfserving.components.common.formats.base import TensorSpecInfo
from kfp_tfserving.components.common.saved_model.proto import SignatureInfo


@dataclass
class CheckReport:
    model_dir: Path
    signatures: dict[str, SignatureInfo]
    findings: list[Finding]
    runtime: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)

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
            "runtime": self.runtime,
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
            Path(doc["model_dir"]), signatures, findings, doc.get("runtime", {}), doc.get("versions", {})
        )
