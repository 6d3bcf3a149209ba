"""The model fingerprint: re-exports of the same model are the same, every real change is a change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import published_versions, run_cli, run_cli_json

from kfp_tfserving.components.common.errors import FormatError
from kfp_tfserving.components.common.saved_model.fingerprint import model_fingerprint
from kfp_tfserving.components.common.tfenv import QUIET_ENV
from kfp_tfserving.components.push_to_serving.manifest import MANIFEST_NAME, Manifest
from kfp_tfserving.components.push_to_serving.publisher import PushOptions, publish, push_step

SOURCES = ("keras", "tf_keras", "tf1", "estimator")
CHANGES = {  # variant -> the fingerprint parts that must change
    "keras-weight": {"signatures", "variables"},
    "keras-output": {"signatures"},  # the output renamed: same graph, same weights
    "tf_keras-weight": {"signatures", "variables"},
    "tf1-constant": {"signatures"},  # a constant inside the graph
    "tf1-swap": {"signatures"},  # two variables' values exchanged: same multiset of values
    "tf1-vocab": {"assets", "init"},  # the vocabulary asset the init op reads
    "estimator-weight": {"signatures", "variables"},
}


def _export(root: Path, *variants: str) -> None:
    script = Path(__file__).parents[2] / "fingerprint_exports.py"
    done = subprocess.run(
        [sys.executable, str(script), str(root), *variants],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **QUIET_ENV},
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    """Every source exported by two processes (`<source>@1`, `<source>@2`) and each change by the second."""
    root = tmp_path_factory.mktemp("fingerprint_exports")
    _export(root, *(f"{s}@1" for s in SOURCES))
    _export(root, *(f"{s}@2" for s in SOURCES), *(f"{c}@2" for c in CHANGES))
    return root


@pytest.mark.parametrize("source", SOURCES)
def test_two_exports_in_separate_processes_are_the_same_model(exports, source):
    first, second = model_fingerprint(exports / f"{source}@1"), model_fingerprint(exports / f"{source}@2")
    assert first == second
    assert first.digest.startswith("tfserving-v1:")


@pytest.mark.parametrize("source", ["keras", "tf_keras"])
def test_the_bytes_of_those_exports_differ(exports, source):
    """Why the fingerprint exists: the files of two TF2 exports are never the same."""
    first, second = exports / f"{source}@1", exports / f"{source}@2"
    assert (first / "saved_model.pb").read_bytes() != (second / "saved_model.pb").read_bytes()


@pytest.mark.parametrize("variant", sorted(CHANGES))
def test_each_change_is_a_different_model(exports, variant):
    source = variant.split("-")[0]
    base, changed = model_fingerprint(exports / f"{source}@2"), model_fingerprint(exports / f"{variant}@2")
    assert base.digest != changed.digest
    assert {part for part in base.parts if base.parts[part] != changed.parts[part]} == CHANGES[variant]


def test_the_warmup_file_is_not_part_of_the_model(exports, tmp_path):
    import shutil

    copy = tmp_path / "m"
    shutil.copytree(exports / "keras@1", copy)
    (copy / "assets.extra").mkdir()
    (copy / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"records")
    assert model_fingerprint(copy) == model_fingerprint(exports / "keras@1")


def test_not_a_saved_model_is_a_format_error(tmp_path, exports):
    with pytest.raises(FormatError, match="no saved_model.pb"):
        model_fingerprint(tmp_path)
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((exports / "keras@1" / "saved_model.pb").read_bytes())
    proto.meta_graphs[0].meta_info_def.ClearField("tags")
    proto.meta_graphs[0].meta_info_def.tags.append("train")
    (tmp_path / "saved_model.pb").write_bytes(proto.SerializeToString())
    with pytest.raises(FormatError, match=r"no meta graph with the tag-set \{serve\}"):
        model_fingerprint(tmp_path)


def test_a_re_export_publishes_nothing_and_force_publishes(exports, tmp_path):
    base = tmp_path / "serving" / "m"
    first = publish(exports / "keras@1", str(base), options=PushOptions())
    metadata: dict = {}
    report = tmp_path / "push_report.md"
    again = push_step(exports / "keras@2", {}, metadata, str(base), PushOptions(), report)
    assert "**unchanged: version 1 kept**" in report.read_text()
    assert first.model_fingerprint in report.read_text()
    assert (again.version, again.published, published_versions(base)) == (1, False, [1])
    # TFX Pusher's contract: the version is in place, so `pushed` is 1; this project's keys say unchanged.
    assert metadata["pushed"] == 1 and metadata["pushed_version"] == "1" and metadata["published"] == 0
    assert metadata["push_outcome"] == "unchanged: version 1 kept"
    assert metadata["model_fingerprint"] == first.model_fingerprint != ""
    stored = Manifest.from_json((base / "1" / MANIFEST_NAME).read_text())
    assert stored.model_fingerprint == first.model_fingerprint

    forced = publish(exports / "keras@2", str(base), options=PushOptions(force=True))
    assert (forced.version, forced.published, published_versions(base)) == (2, True, [1, 2])
    changed = publish(exports / "keras-weight@2", str(base), options=PushOptions())
    assert (changed.version, changed.published) == (3, True)


def test_the_push_step_takes_the_check_steps_fingerprint_and_needs_no_tensorflow(exports, tmp_path):
    from kfp_tfserving.components.check_signatures.check_step import check_model

    checked = check_model(exports / "keras@1")
    assert checked.runtime.model_fingerprint == model_fingerprint(exports / "keras@1").digest
    child = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from kfp_tfserving.components.push_to_serving.publisher import PushOptions, push_step\n"
        "meta = {}\n"
        "push_step(Path(sys.argv[1]), {'model_fingerprint': sys.argv[3]}, meta, sys.argv[2], PushOptions(),"
        " Path(sys.argv[2]) / 'report.md')\n"
        "print(json.dumps({'tensorflow': 'tensorflow' in sys.modules, 'fingerprint': meta['model_fingerprint']}))\n"
    )
    base = tmp_path / "m"
    fingerprint = checked.runtime.model_fingerprint
    proc = subprocess.run(
        [sys.executable, "-c", child, str(exports / "keras@1"), str(base), fingerprint],
        capture_output=True,
        text=True,
        env={**os.environ, **QUIET_ENV},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answer == {"tensorflow": False, "fingerprint": fingerprint}
    assert Manifest.from_json((base / "1" / MANIFEST_NAME).read_text()).model_fingerprint == fingerprint


def test_older_manifests_without_a_fingerprint_still_compare_bytes(exports, tmp_path):
    base = tmp_path / "m"
    publish(exports / "tf1@1", str(base), options=PushOptions())
    manifest_path = base / "1" / MANIFEST_NAME
    manifest = Manifest.from_json(manifest_path.read_text())
    del manifest.source["model_fingerprint"]  # as written before fingerprints existed
    manifest_path.write_text(manifest.to_json())
    same_bytes = publish(exports / "tf1@1", str(base), options=PushOptions())
    assert (same_bytes.version, same_bytes.published) == (1, False)
    re_export = publish(exports / "tf1@2", str(base), options=PushOptions())  # bytes differ: no way to tell
    assert (re_export.version, re_export.published) == (2, True)


def test_the_cli_says_unchanged(exports, tmp_path):
    base = tmp_path / "m"
    assert run_cli("push", str(exports / "tf_keras@1"), "--base-path", str(base)).returncode == 0
    again = run_cli("push", str(exports / "tf_keras@2"), "--base-path", str(base))
    assert again.returncode == 0, again.stderr
    assert "unchanged: version 1 kept" in again.stdout
    assert published_versions(base) == [1]


@pytest.mark.slow
def test_a_second_run_of_the_same_keras_file_publishes_nothing(tmp_path, keras_two_io):
    """The issue's scenario: the whole pipeline (load, export, check, push) run twice on one source."""
    base = tmp_path / "serving" / "scorer"
    first = run_cli_json("run", str(keras_two_io), "--base-path", str(base))
    second = run_cli("run", str(keras_two_io), "--base-path", str(base))
    assert second.returncode == 0, second.stderr[-2000:]
    assert "unchanged: version 1 kept" in second.stdout
    assert (first["published"], first["outcome"]) == (True, "published version 1")
    assert published_versions(base) == [1]
