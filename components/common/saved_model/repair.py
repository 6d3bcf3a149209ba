"""Repair a SavedModel that Python's loaders run but TF Serving cannot.

Duplicated AssetFileDefs: a graph saved by two TF1 Builders in one session lists each asset twice (the
first Builder added it to the graph's collection). Python's loader collects them in a dict; the C++ loader
feeds every entry and fails ('Endpoint "asset_path:0" fed more than once'). The duplicates are dropped.

Variables the saver_def never restores:
`tf.saved_model.save(keras3_model)` (directly, or through a tf.Module that tracks one) writes a saver_def
that restores other variable handles than the signatures read: the object-graph loader hides it, the model
server fails every request. Loading it with the TF2 loader and saving the loaded object again writes a
saver_def that restores what the signatures read. Signature names and method names are kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kfp_tfserving.components.common.saved_model.proto import duplicate_asset_tensors, read_saved_model_proto
from kfp_tfserving.components.common.saved_model.tags import SERVE, Tags
from kfp_tfserving.components.common.saved_model.tf_protos import meta_graph_pb2
from kfp_tfserving.components.common.serving_oracle import ServingLoadError, load_served, servability_problem
from kfp_tfserving.components.common.tfenv import import_tensorflow, silenced_stderr


def serving_problem(entry: Path, tags: Tags = SERVE) -> str | None:
    """Why TF Serving could not serve the SavedModel as it is (loaded as the model server does), or None."""
    try:
        with load_served(entry, tags=tags, replay_warmup=False) as served:
            return servability_problem(served)
    except ServingLoadError as err:
        if err.stage == "import":
            raise  # nothing a re-save can mend: the graph itself does not import
        return err.what


def resave(
    source: Any,
    export_dir: Path,
    signatures: dict[str, str],
    methods_from: Path,
    tags: Tags = SERVE,
) -> None:
    """Save the TF2-loaded `source` again, serving `signatures` (served name -> source signature name)
    under the tag-set `tags`."""
    tf = import_tensorflow()
    functions = {name: source.signatures[original] for name, original in signatures.items()}
    with silenced_stderr():
        tf.saved_model.save(source, str(export_dir), signatures=functions)
    # TF2's save writes every signature as `predict`; Classify and Regress need their method names back.
    original = {
        name: sig.method_name
        for meta in read_saved_model_proto(methods_from).meta_graphs
        if set(meta.meta_info_def.tags) == set(tags)
        for name, sig in meta.signature_def.items()
    }
    proto = read_saved_model_proto(export_dir)
    for meta in proto.meta_graphs:
        del meta.meta_info_def.tags[:]  # TF2's save writes {serve}; TF Serving is told to load `tags`
        meta.meta_info_def.tags.extend(sorted(tags))
        for name, sig in meta.signature_def.items():
            method = original.get(signatures.get(name, ""), "")
            if method:
                sig.method_name = method
    (export_dir / "fingerprint.pb").unlink(missing_ok=True)  # it hashes the proto as first written
    (export_dir / "saved_model.pb").write_bytes(proto.SerializeToString())


def drop_duplicate_assets(export_dir: Path) -> list[str]:
    """Keep the first AssetFileDef of each asset tensor in every meta graph; the tensors that were listed
    more than once (nothing else in the SavedModel changes)."""
    proto = read_saved_model_proto(export_dir)
    dropped: list[str] = []
    for meta in proto.meta_graphs:
        duplicates = duplicate_asset_tensors(meta)
        if not duplicates:
            continue
        dropped += [name for name in duplicates if name not in dropped]
        if meta.asset_file_def:
            kept = _first_of_each(list(meta.asset_file_def), lambda a: a.tensor_info.name)
            del meta.asset_file_def[:]
            meta.asset_file_def.extend(kept)
        else:
            packed = meta.collection_def["saved_model_assets"].any_list.value

            def tensor(any_proto) -> str:
                asset = meta_graph_pb2().AssetFileDef()
                any_proto.Unpack(asset)
                return asset.tensor_info.name

            kept = _first_of_each(list(packed), tensor)
            del packed[:]
            packed.extend(kept)
    if dropped:
        for stale in ("saved_model.pbtxt", "fingerprint.pb"):  # the fingerprint hashes the old proto
            (export_dir / stale).unlink(missing_ok=True)
        (export_dir / "saved_model.pb").write_bytes(proto.SerializeToString())
    return dropped


def _first_of_each(items: list, key) -> list:
    seen: set[str] = set()
    kept = []
    for item in items:
        if key(item) not in seen:
            seen.add(key(item))
            kept.append(item)
    return kept


def duplicate_assets_repair(dropped: list[str]) -> str:
    """The `repaired` text of an export whose duplicated AssetFileDefs were dropped."""
    return (
        f"dropped the duplicated AssetFileDef of {', '.join(dropped)} (TensorFlow's C++ loader, the one TF "
        "Serving runs, feeds each entry and refuses a tensor fed twice)"
    )
