"""TF1-style SavedModel layouts (Estimator exports, TF1 hub modules) exported by copying the directory.

Only `saved_model.pb` is edited (the {serve} tag-set, a `serving_default` entry), so every signature keeps
its method name: TF2's re-save would turn classify and regress into predict and break TF Serving's
Classify/Regress APIs. A TF2 SavedModel found in the same layout goes to the saved_model handler.
"""

from __future__ import annotations

import abc
from pathlib import Path

from kfp_tfserving.components.common.formats.base import ExportOptions, FormatHandler, LoadedModel
from kfp_tfserving.components.common.formats.saved_model import SavedModelHandler, load_signature_model
from kfp_tfserving.components.common.saved_model.edit import copy_with_serving_default
from kfp_tfserving.components.common.saved_model.tags import Tags


class SignatureCopyHandler(FormatHandler):
    # The tag-set the source keeps its inference graph under; None: the one TF Serving loads (--tags).
    source_tags: frozenset[str] | None = None
    fallback_signature: str = ""  # served when there is no serving_default and no --signature

    @abc.abstractmethod
    def is_tf1(self, entry: Path, tags: tuple[str, ...]) -> bool:
        """True when entry is written the TF1 way (copied and edited); False sends it to the TF2 handler."""

    def _source_tags(self, options: ExportOptions) -> Tags:
        return options.tags if self.source_tags is None else tuple(sorted(self.source_tags))

    def load(self, entry: Path, options: ExportOptions) -> LoadedModel:
        if not self.is_tf1(entry, options.tags):
            loaded = SavedModelHandler().load(entry, options)
            loaded.format = self.name
            loaded.export_with = SavedModelHandler.name
            return loaded
        loaded = load_signature_model(
            self.name, entry, self._source_tags(options), options.signature, self.fallback_signature
        )
        loaded.saved_model.served_tags = options.tags
        print(f"{entry.name}: serving signature '{loaded.saved_model.serving_signature}'", flush=True)
        return loaded

    def export(self, loaded: LoadedModel, export_dir: Path) -> None:
        if loaded.export_with == SavedModelHandler.name:
            SavedModelHandler().export(loaded, export_dir)
            return
        copy_with_serving_default(
            loaded.saved_model.entry,
            export_dir,
            loaded.saved_model.serving_signature,
            loaded.saved_model.tags,
            loaded.saved_model.served_tags,
        )
