"""A finding: what TF Serving would object to, where, and how to fix it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

ERROR = "error"  # blocks the push
WARNING = "warning"  # reported, does not block


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    message: str
    fix: str
    signature: str = ""
    tensor: str = ""

    def one_line(self) -> str:
        where = "/".join(p for p in (self.signature, self.tensor) if p)
        return f"[{self.code}] {where + ': ' if where else ''}{self.message}; {self.fix}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == ERROR]
