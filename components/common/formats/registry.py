"""The ordered list of format handlers; the first that recognises a path wins."""

from __future__ import annotations

from pathlib import Path

from kfp_tfserving.components.common.errors import FormatError
from kfp_tfserving.components.common.formats.base import FormatHandler
from kfp_tfserving.components.common.formats.checkpoint import CheckpointHandler
from kfp_tfserving.components.common.formats.estimator import EstimatorHandler
from kfp_tfserving.components.common.formats.frozen_graph import FrozenGraphHandler
from kfp_tfserving.components.common.formats.hub import HubHandler
from kfp_tfserving.components.common.formats.keras_files import KerasH5Handler, KerasV3Handler
from kfp_tfserving.components.common.formats.keras_pairs import KerasPairHandler
from kfp_tfserving.components.common.formats.keras_saved_model import KerasSavedModelHandler
from kfp_tfserving.components.common.formats.saved_model import SavedModelHandler
from kfp_tfserving.components.common.formats.tfx_trainer import TfxTrainerHandler

# Order matters where formats nest: more specific layouts come before the generic SavedModel. The hub
# handler comes after it: saved_model declines TF1 hub modules, and `--format hub` takes any SavedModel.
HANDLERS: list[FormatHandler] = [
    TfxTrainerHandler(),
    EstimatorHandler(),
    KerasSavedModelHandler(),
    SavedModelHandler(),
    HubHandler(),
    CheckpointHandler(),
    KerasV3Handler(),
    KerasH5Handler(),
    KerasPairHandler(),
    FrozenGraphHandler(),
]


def known_formats() -> list[str]:
    return [handler.name for handler in HANDLERS]


def handler_named(name: str) -> FormatHandler:
    for handler in HANDLERS:
        if handler.name == name:
            return handler
    raise FormatError(f"unknown format '{name}'", f"use one of: auto, {', '.join(known_formats())}")


def _visible_children(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if not p.name.startswith(".")]


def detect_format(path: Path, forced: str = "auto") -> tuple[FormatHandler, Path]:
    """The handler for the model at `path` and the model's entry point inside it.

    A directory holding a single entry (an unpacked archive's top folder, a copied file) is looked into.
    """
    candidates = HANDLERS if forced in ("", "auto") else [handler_named(forced)]
    current = path
    while True:
        for handler in candidates:
            entry = handler.detect(current)
            if entry is not None:
                return handler, entry
        children = _visible_children(current) if current.is_dir() else []
        if len(children) != 1:
            break
        current = children[0]
    if forced not in ("", "auto"):
        raise FormatError(
            f"{path}: does not look like a '{forced}' model",
            "check --format, or leave it as auto to detect the format",
        )
    raise FormatError(
        f"{path}: no TensorFlow model format recognised",
        f"give a path to one of: {', '.join(known_formats())}, or name it with --format",
    )
