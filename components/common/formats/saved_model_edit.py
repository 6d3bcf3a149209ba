"""Make an existing SavedModel servable by editing its proto, not by re-tracing it.

TF2's tf.saved_model.save turns every signature into a `predict` one; TF Serving's Classify and Regress
APIs need the `tensorflow/serving/classify` and `/regress` method names kept. Copying the directory and
editing saved_model.pb keeps every signature, its method name, the variables and the assets exactly.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from kfp_tfserving.components.common import serving_oracle
from kfp_tfserving.components.common.errors import FormatError
from kfp_tfserving.components.common.formats.base import LoadedModel
from kfp_tfserving.components.common.formats.saved_model_io import (
    SERVE_TAG,
    SERVING_DEFAULT,
    read_saved_model_proto,
    run_signature,
    serve_meta_graph,
    signatures_of,
    tag_set_text,
)
from kfp_tfserving.components.common.tfenv import import_tensorflow, silenced_stderr

PREDICT_FALLBACK = "predict"


def meta_graph_with_tags(proto, tags: set[str], where: Path):
    return serve_meta_graph(proto, where, tuple(sorted(tags)))


def is_tf1_meta_graph(meta) -> bool:
    """Written by TF1's Builder (no object graph): its signature_def map is the whole truth."""
    return not meta.object_graph_def.nodes


def pick_serving_signature(names: list[str], wanted: str, where: Path, fallback: str = "") -> str:
    """serving_default if present; else --signature, the only signature, or `fallback` when present."""
    if wanted:
        if wanted not in names:
            raise FormatError(
                f"{where}: no signature '{wanted}' (it has {names})", "pass one of those to --signature"
            )
        return wanted
    if SERVING_DEFAULT in names:
        return SERVING_DEFAULT
    if len(names) == 1:
        return names[0]
    if fallback in names:
        return fallback
    raise FormatError(
        f"{where}: no serving_default signature and several others {names}",
        "name the one to serve with --signature",
    )


def load_signature_model(
    handler_name: str, entry: Path, tags: set[str], wanted: str, fallback: str = ""
) -> LoadedModel:
    """Load a SavedModel's meta graph with `tags`; the reference runs the chosen signature of the source."""
    proto = read_saved_model_proto(entry)
    meta = meta_graph_with_tags(proto, tags, entry)
    signatures = signatures_of(meta)
    if not signatures:
        raise FormatError(f"{entry}: the SavedModel has no signatures", "re-export it with signatures")
    serving = pick_serving_signature(sorted(signatures), wanted, entry, fallback)
    tf = import_tensorflow()
    try:
        with silenced_stderr():
            source = tf.saved_model.load(str(entry), tags=sorted(tags))
    except Exception as err:
        raise FormatError(
            f"{entry}: TensorFlow cannot load its {tag_set_text(tags)} graph: {serving_oracle.specific_line(err)}",
            "check that the SavedModel directory is complete (variables/, assets/)",
        ) from None

    def reference(inputs):
        return run_signature(entry, inputs, serving, loaded=source)

    return LoadedModel(
        handler_name,
        source,
        signatures[serving].inputs,
        reference,
        extras={"entry": entry, "serving_signature": serving, "tags": sorted(tags)},
    )


def copy_with_serving_default(
    entry: Path, export_dir: Path, serving: str, tags: set[str], served_tags: set[str] | None = None
) -> None:
    """Copy the SavedModel; the meta graph with `tags` is tagged `served_tags` (default: {serve}) and gains
    serving_default. Every other meta graph ({train}, {serve,gpu}, ...) is kept as it is, except one that
    already has `served_tags`: TF Serving must find exactly one graph under the tag-set it loads."""
    served = set(served_tags or {SERVE_TAG})
    shutil.copytree(entry, export_dir, dirs_exist_ok=True)
    if serving == SERVING_DEFAULT and tags == served:
        return  # already servable: publish the original bytes
    proto = read_saved_model_proto(entry)
    chosen = meta_graph_with_tags(proto, tags, entry)
    for other in list(proto.meta_graphs):
        if other is not chosen and set(other.meta_info_def.tags) == served:
            proto.meta_graphs.remove(other)  # the chosen graph takes over the served tag-set
    _set_tags(chosen, served)
    if serving != SERVING_DEFAULT:
        chosen.signature_def[SERVING_DEFAULT].CopyFrom(chosen.signature_def[serving])
    for stale in ("saved_model.pbtxt", "fingerprint.pb"):  # the fingerprint hashes the old proto
        (export_dir / stale).unlink(missing_ok=True)
    (export_dir / "saved_model.pb").write_bytes(proto.SerializeToString())


def _set_tags(meta, tags: set[str]) -> None:
    del meta.meta_info_def.tags[:]
    meta.meta_info_def.tags.extend(sorted(tags))


def serve_under(export_dir: Path, tags: set[str]) -> bool:
    """Tag an export's lone {serve} meta graph with `tags` (what TF Serving is told to load); True if changed.

    Exports written by TensorFlow (Keras, TF1 graphs, re-saves) hold one {serve} graph; a copied SavedModel
    already serves the asked tag-set and is left alone.
    """
    proto = read_saved_model_proto(export_dir)
    if any(set(m.meta_info_def.tags) == tags for m in proto.meta_graphs):
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
    meta = meta_graph_with_tags(proto, {SERVE_TAG}, model_dir)
    return {name: sig.method_name for name, sig in signatures_of(meta).items()}
