"""The typed metadata of each step's Model artifact: round trips through KFP's protobuf Struct, the keys KFP
and TFX read, and keys from elsewhere passed through."""

from __future__ import annotations

import dataclasses

import pytest
from google.protobuf import json_format, struct_pb2

from kfp_tfserving.components.common.artifacts import (
    CheckedModelMetadata,
    ExportedModelMetadata,
    LoadedModelMetadata,
    PushedModelMetadata,
)

SIGNATURE = {
    "method_name": "tensorflow/serving/predict",
    "inputs": {"x": {"dtype": "float32", "shape": [-1, 4]}},
    "outputs": {"y": {"dtype": "float32", "shape": [-1, 1]}},
}
EXPORTED = ExportedModelMetadata(
    source_format="keras_h5",
    repaired="",
    source_uri="gs://b/m.h5",
    saved_model_tags=["serve", "gpu"],
    signatures={"serving_default": SIGNATURE},
    parity={"y": {"max_abs_diff": 1.5e-7, "within_tolerance": True}},
    parity_tolerance={"atol": 1e-4, "rtol": 1e-4, "compute_dtype": "float32"},
    parity_passed=True,
    widened_outputs={},
    timings_seconds={"load": 0.25, "export": 1.5},
)
EXAMPLES = [
    LoadedModelMetadata(
        format="keras_h5",
        entry="m/m.h5",
        source_uri="gs://b/m.tar.gz",
        format_description="Keras 2 HDF5",
        source_bytes=123456,
        source_sha256="ab" * 32,
        archive="m.tar.gz",
        archive_format="tar.gz",
        extracted_files=1,
        extracted_bytes=120000,
    ),
    EXPORTED,
    CheckedModelMetadata.after_check(
        EXPORTED.to_dict(), {"passed": True, "findings": [], "runtime": {"load_seconds": 0.5}}, "fp:1"
    ),
    PushedModelMetadata(
        pushed=1,
        published=1,
        pushed_destination="gs://b/models/m/7",
        pushed_version="7",
        model_name="m",
        base_path="gs://b/models/m",
        push_outcome="published version 7",
        model_fingerprint="fp:1",
        content_digest="cd",
        manifest_sha256="ms",
        removed_versions=[3, 4],
        version_labels={"canary": 7, "stable": 6},
        serving_signature=SIGNATURE,
        repaired="",
    ),
]


def _through_struct(data: dict) -> dict:
    """What a downstream step reads: KFP stores metadata as a protobuf Struct (every number a float)."""
    struct = struct_pb2.Struct()
    struct.update(data)
    return json_format.MessageToDict(struct)


@pytest.mark.parametrize("metadata", EXAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip_through_kfp(metadata):
    written = metadata.to_dict()
    read = _through_struct(written)
    assert isinstance(read.get("extracted_files", read.get("removed_versions", [0.0])), (float, list))
    again = type(metadata).from_dict(read)
    assert again == metadata
    assert again.to_dict() == written


def test_the_keys_tfx_and_the_next_steps_read_are_unchanged():
    pushed = EXAMPLES[-1].to_dict()
    assert {"pushed", "pushed_destination", "pushed_version"} <= set(pushed)  # TFX Pusher's
    assert pushed["published"] == 1  # this project's: whether this push wrote a new version
    assert isinstance(pushed["pushed_version"], str) and pushed["pushed"] == 1
    assert {"format", "entry", "source_uri", "source_sha256"} <= set(EXAMPLES[0].to_dict())
    checked = EXAMPLES[2].to_dict()
    assert {"signatures", "saved_model_tags", "check_report", "model_fingerprint", "repaired"} <= set(checked)


def test_fields_never_written_stay_absent():
    """A source that is not an archive has no extracted_* keys, as before the metadata was typed."""
    written = LoadedModelMetadata(format="keras", entry="m.keras", source_uri="/m.keras").to_dict()
    assert written == {"format": "keras", "entry": "m.keras", "source_uri": "/m.keras"}


def test_keys_from_elsewhere_pass_through_each_step():
    """The check step passes on whatever its model carried (a Model artifact from another project)."""
    foreign = {"source": "their-trainer", "accuracy": 0.9, "signatures": {"serving_default": SIGNATURE}}
    checked = CheckedModelMetadata.after_check(foreign, {"passed": True}, "fp:2")
    assert checked.extra == {"source": "their-trainer", "accuracy": 0.9}
    assert checked.serving_default == SIGNATURE
    out = checked.to_dict()
    assert out["source"] == "their-trainer" and out["model_fingerprint"] == "fp:2"
    assert PushedModelMetadata.from_dict(out).extra["source"] == "their-trainer"


def test_numbers_come_back_as_their_fields_types():
    read = PushedModelMetadata.from_dict({"pushed": 0.0, "pushed_version": 12.0, "removed_versions": [1.0]})
    assert read.pushed == 0 and type(read.pushed) is int
    assert read.pushed_version == "12" and read.version == 12
    assert read.removed_versions == [1] and type(read.removed_versions[0]) is int
    loaded = LoadedModelMetadata.from_dict({"source_bytes": 5.0, "archive": ""})
    assert loaded.source_bytes == 5 and loaded.archive == "" and loaded.extracted_files is None


def test_every_field_has_a_type_from_dict_understands():
    for cls in (LoadedModelMetadata, ExportedModelMetadata, CheckedModelMetadata, PushedModelMetadata):
        assert cls.from_dict(cls().to_dict()) == cls()
        assert all(f.name != "extra" or f.default_factory is dict for f in dataclasses.fields(cls))
