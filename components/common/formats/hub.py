"""TF Hub modules in the TF1 hub format: `tfhub_module.pb` beside a SavedModel with an empty tag-set.

TF2 hub modules are plain TF2 SavedModels; the saved_model handler serves them (`--format hub` too).
"""

from __future__ import annotations

from pathlib import Path

from kfp_tfserving.components.common.formats.saved_model import is_saved_model_dir
from kfp_tfserving.components.common.formats.signature_copy import SignatureCopyHandler

HUB_MARKER = "tfhub_module.pb"
HUB_DEFAULT_SIGNATURE = "default"


class HubHandler(SignatureCopyHandler):
    name = "hub"
    description = "TF Hub module (TF1 hub format, or a TF2 SavedModel)"
    # TF1 hub modules keep their inference graph under the empty tag-set, with a `default` signature.
    source_tags = frozenset()
    fallback_signature = HUB_DEFAULT_SIGNATURE

    def detect(self, path: Path) -> Path | None:
        # Listed after saved_model, so auto-detection only reaches here for TF1 modules (saved_model skips them).
        return path if is_saved_model_dir(path) else None

    def is_tf1(self, entry: Path, tags: tuple[str, ...]) -> bool:
        return (entry / HUB_MARKER).is_file()
