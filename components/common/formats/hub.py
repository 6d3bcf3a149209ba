"""TF Hub modules in the TF1 hub format: `tfhub_module.pb` beside a SavedModel with an empty tag-set.

TF2 hub modules are plain TF2 SavedModels; the saved_model handler serves them (`--format hub` too).
"""

from __future__ import annotations

from pathlib import Path

from kfp_tfserving.components.common.formats.base import ExportOptions, FormatHandler, LoadedModel
from kfp_tfserving.components.common.formats.saved_model import SavedModelHandler, is_saved_model_dir
from kfp_tfserving.components.common.formats.saved_model_edit import (
    copy_with_serving_default,
    load_signature_model,
)

HUB_MARKER = "tfhub_module.pb"
HUB_DEFAULT_SIGNATURE = "default"


class HubHandler(FormatHandler):
    name = "hub"
    description = "TF Hub module (TF1 hub format, or a TF2 SavedModel)"

    def detect(self, path: Path) -> Path | None:
        # Listed after saved_model, so auto-detection only reaches here for TF1 modules (saved_model skips them).
        return path if is_saved_model_dir(path) else None

    def load(self, entry: Path, options: ExportOptions) -> LoadedModel:
        if not (entry / HUB_MARKER).is_file():
            loaded = SavedModelHandler().load(entry, options)
            loaded.format = self.name
            loaded.extras["tf2"] = True
            return loaded
        # TF1 hub modules keep their inference graph under the empty tag-set, with a `default` signature.
        loaded = load_signature_model(self.name, entry, set(), options.signature, HUB_DEFAULT_SIGNATURE)
        print(f"{entry.name}: serving signature '{loaded.extras['serving_signature']}'", flush=True)
        return loaded

    def export(self, loaded: LoadedModel, export_dir: Path) -> None:
        if loaded.extras.get("tf2"):
            SavedModelHandler().export(loaded, export_dir)
            return
        copy_with_serving_default(
            loaded.extras["entry"], export_dir, loaded.extras["serving_signature"], set()
        )
