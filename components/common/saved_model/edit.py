"""Make an existing SavedModel servable by editing its proto, not by re-tracing it.

TF2's tf.saved_model.save turns every signature into a `predict` one; TF Serving's Classify and Regress
APIs need the `tensorflow/serving/classify` and `/regress` method names kept. Copying the directory and
editing saved_model.pb keeps every signature, its method name, the variables and the assets exactly.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from kfp_tfserving.components.common.errors import FormatError
from kfp_tfserving.components.common.saved_model.proto import (
    SERVING_DEFAULT,
    meta_graph,
    read_saved_model_proto,
    signatures_of,
)
from kfp_tfserving.components.common.saved_model.tags import SERVE, SERVE_TAG, Tags


def copy_with_serving_default(
    entry: Path, export_dir: Path, serving: str, tags: Tags, served_tags: Tags = SERVE
) -> None:
    """Copy the SavedModel; the meta graph with `tags` is tagged `served_tags` (default: {serve}) and gains
    serving_default. Every other meta graph ({train}, {serve,gpu}, ...) is kept as it is, except one that
    already has `served_tags`: TF Serving must find exactly one graph under the tag-set it loads."""
    served = set(served_tags)
    shutil.copytree(entry, export_dir, dirs_exist_ok=True)
    if serving == SERVING_DEFAULT and set(tags) == served:
        return  # already servable: publish the original bytes
    proto = read_saved_model_proto(entry)
    chosen = meta_graph(proto, entry, tags)
    for other in list(proto.meta_graphs):
        if other is not chosen and set(other.meta_info_def.tags) == served:
            proto.meta_graphs.remove(other)  # the chosen graph takes over the served tag-set
    _set_tags(chosen, served)
    if serving != SERVING_DEFAULT:
        chosen.signature_def[SERVING_DEFAULT].CopyFrom(chosen.signature_def[serving])
    for stale in ("saved_model.pbtxt", "fingerprint.pb"):  # the fingerprint hashes the old proto
        (export_dir / stale).unlink(missing_ok=True)
    (export_dir / "saved_model.pb").write_bytes(proto.SerializeToString())


def _set_tags(meta, tags) -> None:
    del meta.meta_info_def.tags[:]
    meta.meta_info_def.tags.extend(sorted(tags))


def serve_under(export_dir: Path, tags: Tags) -> bool:
    """Tag an export's lone {serve} meta graph with `tags` (what TF Serving is told to load); True if changed.

    Exports written by TensorFlow (Keras, TF1 graphs, re-saves) hold one {serve} graph; a copied SavedModel
    already serves the asked tag-set and is left alone.
    """
    proto = read_saved_model_proto(export_dir)
    if any(set(m.meta_info_def.tags) == set(tags) for m in proto.meta_graphs):
        return False
    if len(proto.meta_graphs) != 1 or set(proto.meta_graphs[0].meta_info_def.tags) != {SERVE_TAG}:
        found = [sorted(m.meta_info_def.tags) for m in proto.meta_graphs]
        raise FormatError(
            f"{export_dir}: the export has no meta graph to tag {sorted(tags)} (it has {found})"
        )
    _set_tags(proto.meta_graphs[0], tags)
    (export_dir / "fingerprint.pb").unlink(missing_ok=True)  # it hashes the proto as first written
    (export_dir / "saved_model.pb").write_bytes(proto.SerializeToString())
    return True


def signature_methods(model_dir: Path) -> dict[str, str]:
    """Signature name -> method name of the {serve} meta graph (for reports and tests)."""
    proto = read_saved_model_proto(model_dir)
    meta = meta_graph(proto, model_dir, SERVE)
    return {name: sig.method_name for name, sig in signatures_of(meta).items()}
