"""The pipeline runs from its Python function too, with kfp.local, like the YAML the CLI runs."""

from __future__ import annotations

import pytest
from conftest import published_versions
from kfp import local

from kfp_tfserving.components.common.saved_model.proto import read_signatures
from kfp_tfserving.pipelines.export_to_serving import export_to_serving

pytestmark = pytest.mark.slow


def test_python_pipeline_publishes_and_reports_tfx_pusher_keys(tmp_path, keras_two_io):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    base = tmp_path / "serving" / "two"
    task = export_to_serving(source_uri=str(keras_two_io), base_path=str(base))
    meta = task.output.metadata
    assert meta["pushed"] == 1
    assert meta["pushed_version"] == "1"
    assert meta["pushed_destination"] == str(base / "1")
    assert meta["model_name"] == "two"
    assert published_versions(base) == [1]
    assert {s.name for s in read_signatures(base / "1")["serving_default"].inputs} == {"age", "city"}
