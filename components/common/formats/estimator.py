"""Estimator export directories: numeric timestamp subdirectories, each a TF1 SavedModel."""

from __future__ import annotations

from pathlib import Path

from kfp_tfserving.components.common.formats.saved_model import PREDICT_FALLBACK, is_saved_model_dir
from kfp_tfserving.components.common.formats.signature_copy import SignatureCopyHandler
from kfp_tfserving.components.common.saved_model.proto import (
    is_tf1_meta_graph,
    meta_graph,
    read_saved_model_proto,
)

# Method names only TF1 exports (Estimators) write; TF2's tf.saved_model.save makes every signature predict.
_TF1_METHODS = (b"tensorflow/serving/classify", b"tensorflow/serving/regress")


def newest_timestamp_dir(path: Path) -> Path | None:
    """The newest numeric subdirectory holding a SavedModel; `temp-*` (unfinished exports) never count."""
    if not path.is_dir():
        return None
    versions = [p for p in path.iterdir() if p.name.isdigit() and is_saved_model_dir(p)]
    return max(versions, key=lambda p: int(p.name)) if versions else None


def _has_tf1_methods(path: Path) -> bool:
    pb = path / "saved_model.pb"
    if not pb.is_file():
        return False
    with open(pb, "rb") as f:  # chunked, overlapping by the longest marker so none is split
        tail = b""
        while chunk := f.read(1 << 20):
            window = tail + chunk
            if any(marker in window for marker in _TF1_METHODS):
                return True
            tail = window[-64:]
    return False


class EstimatorHandler(SignatureCopyHandler):
    name = "estimator"
    description = "Estimator export directory (timestamped TF1 SavedModels, classify/regress signatures kept)"
    # Raw-receiver regressors export only `predict`; several signatures without a default serve `predict`.
    fallback_signature = PREDICT_FALLBACK

    def detect(self, path: Path) -> Path | None:
        newest = newest_timestamp_dir(path)
        if newest is not None:
            return newest
        return path if is_saved_model_dir(path) and _has_tf1_methods(path) else None

    def is_tf1(self, entry: Path, tags: tuple[str, ...]) -> bool:
        # Timestamped TF2 SavedModels (a serving base path, say): the TF2 handler re-saves them properly.
        return is_tf1_meta_graph(meta_graph(read_saved_model_proto(entry), entry, tags))
