"""Compile every component and pipeline to the YAML committed next to its Python."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

from kfp import compiler

COMPONENT_MODULES = [
    "kfp_tfserving.components.load_model.component",
    "kfp_tfserving.components.export_savedmodel.component",
    "kfp_tfserving.components.check_signatures.component",
    "kfp_tfserving.components.push_to_serving.component",
    "kfp_tfserving.components.train_keras_example.component",
    "kfp_tfserving.components.deploy_kserve.component",
]
PIPELINE_MODULES = [
    "kfp_tfserving.pipelines.export_to_serving",
    "kfp_tfserving.pipelines.serve_model",
    "kfp_tfserving.pipelines.retrain_and_export",
]

# The compiled pipeline YAMLs sit beside their definitions, one folder up from the command line.
PIPELINES_DIR = Path(__file__).resolve().parent.parent


def _targets() -> list[tuple[object, Path]]:
    out = []
    for name in COMPONENT_MODULES:
        module = importlib.import_module(name)
        step = Path(module.__file__).parent.name
        out.append((getattr(module, step), Path(module.__file__).with_name("component.yaml")))
    for name in PIPELINE_MODULES:
        module = importlib.import_module(name)
        stem = name.rsplit(".", 1)[1]
        out.append((getattr(module, stem), Path(module.__file__).with_name(f"{stem}.yaml")))
    return out


def compile_all(output_root: Path | None = None) -> list[Path]:
    """Write every YAML; into `output_root/<file name's parent folder>/` instead when given (for tests).
    With TFX installed (`make tfx`) the TFX pipeline's KFP spec too (pipelines/tfx_serving.json)."""
    written = []
    for func, target in _targets():
        if output_root is not None:
            target = output_root / target.parent.name / target.name
            target.parent.mkdir(parents=True, exist_ok=True)
        compiler.Compiler().compile(func, str(target))
        written.append(target)
    if importlib.util.find_spec("tfx") is not None:
        from kfp_tfserving.pipelines.tfx_serving import compile_for_kubeflow, compiled_spec_path

        target = compiled_spec_path()
        written.append(
            compile_for_kubeflow(output_root / target.parent.name / target.name if output_root else None)
        )
    return written


def committed_yaml_paths() -> list[Path]:
    return [target for _, target in _targets()]


def pipeline_yaml(name: str = "export_to_serving") -> Path:
    return PIPELINES_DIR / f"{name}.yaml"


def normalise(yaml_text: str) -> str:
    """Drop what only records the kfp version that compiled the file."""
    return re.sub(r"kfp[-=]=?\d+\.\d+\.\d+\S*", "kfp-<version>", yaml_text)


def drifted(fresh_root: Path) -> list[Path]:
    """Committed YAMLs that differ from a fresh compile written under fresh_root (see compile_all)."""
    stale = []
    for committed in committed_yaml_paths():
        fresh = fresh_root / committed.parent.name / committed.name
        if not committed.exists() or normalise(committed.read_text()) != normalise(fresh.read_text()):
            stale.append(committed)
    return stale
