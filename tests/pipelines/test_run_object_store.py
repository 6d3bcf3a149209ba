"""`kfp-tfserving run` with both ends on object stores: a model in a bucket in, a version in a bucket out."""

from __future__ import annotations

import pytest
from conftest import run_cli, run_cli_json

from kfp_tfserving.components.common.storage import storage_for
from kfp_tfserving.components.push_to_serving.manifest import MANIFEST_NAME

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("server_fixture", ["gcs_server", "s3_server"])
def test_run_from_a_bucket_to_a_bucket(request, server_fixture, keras_two_io):
    server = request.getfixturevalue(server_fixture)
    bucket = server.new_bucket()
    source = f"{server.scheme}://{bucket}/incoming/two_io.keras"
    storage = storage_for(source)
    storage.upload_file(keras_two_io, source)
    base = f"{server.scheme}://{bucket}/serving/two"

    result = run_cli_json("run", source, "--base-path", base)

    assert result["version"] == 1 and result["path"] == f"{base}/1"
    files = dict(storage.walk_files(f"{base}/1"))
    assert "saved_model.pb" in files and MANIFEST_NAME in files
    assert any(rel.startswith("variables/") for rel in files)
    assert sorted(result["signature"]["inputs"]) == ["age", "city"]
    # Only the version and the claim bookkeeping are left: no staging prefix survives a finished push.
    assert not [name for name in storage.list_dir(base) if name.startswith(".staging")]


def test_run_from_a_missing_object_fails_in_one_line_and_publishes_nothing(gcs_server):
    bucket = gcs_server.new_bucket()
    base = f"gs://{bucket}/serving/none"
    proc = run_cli("run", f"gs://{bucket}/nope/model.keras", "--base-path", base)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope/model.keras" in lines[0]
    assert storage_for(base).list_dir(base) == []
