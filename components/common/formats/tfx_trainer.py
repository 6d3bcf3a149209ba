"""TFX Trainer output: a Model artifact directory holding the SavedModel under `Format-Serving/`."""

from __future__ import annotations

from pathlib import Path

from kfp_tfserving.components.common.errors import FormatError
from kfp_tfserving.components.common.formats.base import ExportOptions, FormatHandler, LoadedModel

SERVING_DIR = "Format-Serving"


class TfxTrainerHandler(FormatHandler):
    name = "tfx_trainer"
    description = "TFX Trainer Model artifact (Format-Serving/ SavedModel)"

    def detect(self, path: Path) -> Path | None:
        serving = path / SERVING_DIR
        return serving if path.is_dir() and serving.is_dir() else None

    def _inner(self, entry: Path):
        # The SavedModel inside may be Keras 2, TF2 or Estimator-shaped: its own handler does the work.
        from kfp_tfserving.components.common.formats.registry import HANDLERS

        for handler in HANDLERS:
            if handler is not self and handler.detect(entry) == entry:
                return handler
        raise FormatError(
            f"{entry}: no SavedModel inside the TFX Model artifact",
            "point at the Trainer's Model artifact whose Format-Serving/ holds saved_model.pb",
        )

    def load(self, entry: Path, options: ExportOptions) -> LoadedModel:
        inner = self._inner(entry)
        loaded = inner.load(entry, options)
        loaded.export_with = loaded.export_with or inner.name  # the handler the inner one delegated to
        print(f"{entry}: TFX Trainer output holding a '{inner.name}' model", flush=True)
        return loaded

    def export(self, loaded: LoadedModel, export_dir: Path) -> None:
        from kfp_tfserving.components.common.formats.registry import handler_named

        handler_named(loaded.export_with).export(loaded, export_dir)
