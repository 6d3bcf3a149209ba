"""The committed YAMLs are what the Python compiles to, and they run without installing anything."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import yaml
from kfp import compiler

from kfp_tfserving.components import __version__
from kfp_tfserving.components.common.image import RUNTIME_IMAGE
from kfp_tfserving.pipelines.cli.compile import (
    committed_yaml_paths,
    compile_all,
    drifted,
    normalise,
    pipeline_yaml,
)


def test_committed_yaml_matches_a_fresh_compile(tmp_path):
    compile_all(tmp_path)
    assert drifted(tmp_path) == [], "run `kfp-tfserving compile` (or `make compile`) and commit the YAML"


def test_a_component_changed_without_recompiling_is_caught(tmp_path):
    compile_all(tmp_path)
    module = importlib.import_module("kfp_tfserving.components.load_model.component")
    source = (
        Path(module.__file__)
        .read_text()
        .replace('model_format: str = "auto"', 'model_format: str = "auto", retries: int = 3')
    )
    changed = tmp_path / "changed_component.py"  # kfp reads the function's source from its file
    changed.write_text(source)
    spec = importlib.util.spec_from_file_location("changed_component", changed)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    compiler.Compiler().compile(module.load_model, str(tmp_path / "load_model" / "component.yaml"))
    stale = drifted(tmp_path)
    assert [p.parent.name for p in stale] == ["load_model"]


def test_normalise_only_forgives_the_kfp_version():
    a = "sdkVersion: kfp-2.17.0\nimage: x:1\n"
    assert normalise(a) == normalise(a.replace("2.17.0", "2.18.1"))
    assert normalise(a) != normalise(a.replace("x:1", "x:2"))


def _executors(doc: dict) -> dict:
    return doc["deploymentSpec"]["executors"]


def test_every_step_uses_the_versioned_runtime_image_and_installs_nothing():
    assert RUNTIME_IMAGE.endswith(f":{__version__}")
    for path in committed_yaml_paths():
        doc = yaml.safe_load(path.read_text())
        for name, executor in _executors(doc).items():
            container = executor["container"]
            assert container["image"] == RUNTIME_IMAGE, (path, name)
            script = " ".join(container["command"])
            assert "pip install" not in script, (path, name)


def test_pipeline_chains_load_export_check_push_and_never_caches_the_push():
    doc = yaml.safe_load(pipeline_yaml("export_to_serving").read_text())
    tasks = doc["root"]["dag"]["tasks"]
    assert set(tasks) == {"load-model", "export-savedmodel", "check-signatures", "push-to-serving"}
    upstream = {name: task.get("dependentTasks", []) for name, task in tasks.items()}
    assert upstream["export-savedmodel"] == ["load-model"]
    assert upstream["check-signatures"] == ["export-savedmodel"]
    assert upstream["push-to-serving"] == ["check-signatures"]
    assert tasks["push-to-serving"]["cachingOptions"] == {}  # enable_cache false is serialised as empty
    params = doc["root"]["inputDefinitions"]["parameters"]
    assert {"source_uri", "base_path", "model_name"} <= set(params)
    assert params["model_name"]["defaultValue"] == ""


def test_component_yaml_defines_the_step_function(tmp_path):
    # Each committed component.yaml carries the one function it is named after.
    for path in [p for p in committed_yaml_paths() if p.name == "component.yaml"]:
        doc = yaml.safe_load(path.read_text())
        (executor,) = _executors(doc).values()
        assert executor["container"]["args"][-1] == path.parent.name
