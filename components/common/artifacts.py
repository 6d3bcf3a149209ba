"""The metadata of each step's output Model artifact, typed: what load, export, check and push hand on.

Each class's `to_dict` writes the keys KFP shows and the next step (or TFX) reads, unchanged; `from_dict`
reads them back from an artifact, undoing what KFP's protobuf Struct does to numbers (every int arrives as
a float). Keys a class does not declare (a Model artifact from another project, the training step's
figures) travel in `extra`, so nothing a step was given is lost on the way.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

M = TypeVar("M", bound="ArtifactMetadata")


def integral(value: Any) -> Any:
    """Floats that hold whole numbers back to ints, through lists and dicts (protobuf Struct has no int)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [integral(v) for v in value]
    if isinstance(value, dict):
        return {k: integral(v) for k, v in value.items()}
    return value


def _as(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    base = typing.get_origin(kind) or kind
    if base in (typing.Union, types.UnionType):  # X | None
        return _as(next(a for a in typing.get_args(kind) if a is not type(None)), value)
    if base is int and not isinstance(value, bool):
        return int(value)
    if base is str:
        return str(integral(value))
    if base is bool:
        return bool(value)
    if base in (list, dict):
        return integral(base(value))
    return value


@dataclass(kw_only=True)
class ArtifactMetadata:
    extra: dict[str, Any] = field(default_factory=dict)  # keys no field declares, passed through

    def to_dict(self) -> dict[str, Any]:
        """The artifact's metadata; fields left at None are absent (as the step never wrote them)."""
        out = dict(self.extra)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name != "extra" and value is not None:
                out[f.name] = value
        return out

    @classmethod
    def from_dict(cls: type[M], data: Mapping[str, Any]) -> M:
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: _as(hints[k], v) for k, v in data.items() if k in names}
        return cls(**known, extra={k: v for k, v in data.items() if k not in names})


@dataclass(kw_only=True)
class LoadedModelMetadata(ArtifactMetadata):
    """load_model's `model` (and train_keras_example's): where the model is inside the artifact."""

    format: str = ""  # the format handler's name; empty: a Model from elsewhere, detected by the export
    entry: str = ""  # the model's path inside the artifact
    source_uri: str = ""  # as given, credentials redacted
    format_description: str | None = None
    source_bytes: int | None = None
    source_sha256: str | None = None
    archive: str | None = None  # the archive's file name; "" when the source was not an archive
    archive_format: str | None = None
    extracted_files: int | None = None  # archives only
    extracted_bytes: int | None = None


@dataclass(kw_only=True)
class ExportedModelMetadata(ArtifactMetadata):
    """export_savedmodel's `exported_model`: the SavedModel's signatures and its parity with the source."""

    source_format: str = ""
    repaired: str = ""  # why a source SavedModel was saved again; empty when it was not
    source_uri: str = ""
    saved_model_tags: list[str] = field(default_factory=list)  # the tag-set the export serves
    signatures: dict[str, Any] = field(default_factory=dict)  # name -> method_name, inputs, outputs
    parity: dict[str, Any] = field(default_factory=dict)  # output -> max_abs_diff, within_tolerance
    parity_tolerance: dict[str, Any] = field(default_factory=dict)  # atol, rtol, compute_dtype
    parity_passed: bool = False
    widened_outputs: dict[str, str] = field(default_factory=dict)  # output -> half dtype served as float32
    timings_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def serving_default(self) -> dict[str, Any]:
        return self.signatures.get("serving_default", {})


@dataclass(kw_only=True)
class CheckedModelMetadata(ExportedModelMetadata):
    """check_signatures' `checked_model`: the exported model's metadata, the check report and the model
    fingerprint the push compares with the newest version's."""

    check_report: dict[str, Any] = field(default_factory=dict)  # CheckReport.as_dict()
    model_fingerprint: str = ""

    @classmethod
    def after_check(
        cls, exported: Mapping[str, Any], check_report: dict[str, Any], model_fingerprint: str
    ) -> CheckedModelMetadata:
        checked = cls.from_dict(exported)
        checked.check_report = check_report
        checked.model_fingerprint = model_fingerprint
        return checked


@dataclass(kw_only=True)
class PushedModelMetadata(ArtifactMetadata):
    """push_to_serving's `pushed_model`: TFX Pusher's keys (`pushed`, `pushed_destination`,
    `pushed_version`) and what the push did."""

    pushed: int = 0  # TFX Pusher's: 1 once the version is in place, also an unchanged one kept
    published: int = 0  # 1 when this push wrote a new version, 0 when the newest already was this model
    pushed_destination: str = ""  # <base_path>/<version>
    pushed_version: str = ""  # a string, as TFX's Pusher writes it
    model_name: str = ""
    base_path: str = ""
    push_outcome: str = ""  # "published version N" or "unchanged: version N kept"
    model_fingerprint: str = ""
    content_digest: str = ""
    manifest_sha256: str = ""
    removed_versions: list[int] = field(default_factory=list)
    version_labels: dict[str, int] = field(default_factory=dict)
    serving_signature: dict[str, Any] = field(default_factory=dict)  # serving_default, as exported
    repaired: str = ""

    @property
    def version(self) -> int:
        return int(self.pushed_version)
