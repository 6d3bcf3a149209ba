"""Where TensorFlow's C++ loader (the one TF Serving runs) and Python's loaders part ways, read off the protos.

`tensorflow::LoadSavedModel` (loader.cc) and Python's TF1 loader (loader_impl.py) read the same SavedModel
differently: the C++ one feeds every AssetFileDef (a duplicate fails the load), joins an asset's filename
under assets/ even when it is absolute, reads debug/saved_model_debug_info.pb, restores only through the
saver_def and runs only the init op it picks. The oracle's load is the verdict; these checks name the cause
and the fix before the load, each with its own code. tests/test_loader_divergence.py builds each case.
"""

from __future__ import annotations

from kfp_tfserving.components.check_signatures.findings import ERROR, WARNING, Finding
from kfp_tfserving.components.common.saved_model.proto import (
    INIT_OP_COLLECTIONS,
    asset_file_defs,
    duplicate_asset_tensors,
    init_op_name,
    init_op_source,
)

MAIN_OP, LEGACY_INIT_OP = INIT_OP_COLLECTIONS
DEBUG_INFO = ("debug", "saved_model_debug_info.pb")


def check_duplicate_assets(view) -> list[Finding]:
    if view.serve is None:
        return []
    return [
        Finding(
            "duplicate-asset",
            ERROR,
            f"asset tensor '{name}' is listed by more than one AssetFileDef: TF Serving's C++ loader feeds "
            f"every entry and fails the load ('Endpoint \"{name}\" fed more than once'); Python's loader "
            "keeps one and hides it",
            "kfp-tfserving run drops the duplicates on the way in; or save each export from its own graph "
            "(a second Builder in the same session adds the assets to the graph's collection again)",
            tensor=name,
        )
        for name in duplicate_asset_tensors(view.serve)
    ]


def check_asset_paths(view) -> list[Finding]:
    """The C++ loader feeds <version>/assets/<filename> (io::JoinPath: an absolute filename is joined too)."""
    if view.serve is None:
        return []
    found = []
    for asset in asset_file_defs(view.serve):
        where = view.model_dir / "assets" / asset.filename.lstrip("/")
        if where.is_file():
            continue
        absolute = asset.filename.startswith("/")
        found.append(
            Finding(
                "asset-file-missing",
                ERROR,
                f"AssetFileDef '{asset.filename}' for '{asset.tensor_info.name}': TF Serving's C++ loader feeds "
                f"{where.relative_to(view.model_dir)}, which does not exist"
                + ("; Python's loader uses the absolute path and hides it" if absolute else ""),
                "put the file under assets/ and give the AssetFileDef its name relative to assets/",
                tensor=asset.tensor_info.name,
            )
        )
    return found


def check_debug_info(view) -> list[Finding]:
    """LoadSavedModel reads debug/saved_model_debug_info.pb when present and fails on a damaged one."""
    path = view.model_dir.joinpath(*DEBUG_INFO)
    if not path.is_file():
        return []
    from google.protobuf.message import DecodeError

    from kfp_tfserving.components.common.saved_model.tf_protos import tf_proto_module

    debug_info = tf_proto_module("tensorflow.core.framework.graph_debug_info_pb2")  # no TensorFlow import
    try:
        debug_info.GraphDebugInfo.FromString(path.read_bytes())
    except (DecodeError, OSError) as err:
        return [
            Finding(
                "debug-info-unreadable",
                ERROR,
                f"{'/'.join(DEBUG_INFO)} does not parse ({err}): TF Serving's C++ loader reads it and fails "
                "the load; Python's loaders never read it",
                f"delete {'/'.join(DEBUG_INFO)} (it only maps ops to Python stack traces), or export again",
            )
        ]
    return []


def check_saver_def(view) -> list[Finding]:
    """Variables and a checkpoint but no saver_def: the C++ loader restores nothing (Python's TF1 loader
    makes a Saver of the graph's variables and restores them)."""
    meta = view.serve
    if meta is None or meta.saver_def.restore_op_name:
        return []
    if not (view.model_dir / "variables" / "variables.index").is_file():
        return []  # no checkpoint: check_variables names that
    variables = [n.name for n in meta.graph_def.node if n.op in ("VariableV2", "VarHandleOp")]
    if not variables:
        return []
    return [
        Finding(
            "saver-def-missing",
            ERROR,
            f"the meta graph has variables ({', '.join(variables[:3])}{' ...' if len(variables) > 3 else ''}) "
            "and a checkpoint but no saver_def: TF Serving's C++ loader restores nothing and every request "
            "reading them fails; Python's TF1 loader builds a Saver and hides it",
            "export with a Saver (tf.compat.v1.saved_model.Builder writes one), or let kfp-tfserving run export it",
            tensor=variables[0],
        )
    ]


def check_init_op_sources(view) -> list[Finding]:
    """Init ops the C++ loader never runs (a second source), and init ops named like tensors."""
    meta = view.serve
    if meta is None:
        return []
    used = init_op_source(meta)
    graph_nodes = {node.name for node in meta.graph_def.node}
    found = []
    for key in (MAIN_OP, LEGACY_INIT_OP):
        if key not in meta.collection_def or key == used:
            continue  # TF1 Builders write main_op beside the init signature: harmless when it exists
        missing = [n for n in meta.collection_def[key].node_list.value if n.split(":")[0] not in graph_nodes]
        if missing:
            found.append(
                Finding(
                    "init-op-ignored",
                    WARNING,
                    f"the {key} collection names {', '.join(missing)}, which the graph does not have: TF "
                    f"Serving never runs it (it runs the init op of {used}), Python's TF1 loader imports it "
                    "and refuses the SavedModel",
                    f"export with one init op (drop {key})",
                )
            )
    name = init_op_name(meta)
    if ":" in name:
        found.append(
            Finding(
                "init-op-named-as-tensor",
                WARNING,
                f"the init op is named as a tensor ('{name}'): TF Serving runs the op; Python's TF1 loader "
                "(and tools on it, such as saved_model_cli) refuses the SavedModel",
                f"name the op ('{name.split(':')[0]}') in {used}",
            )
        )
    return found


LOADER_CHECKS = [
    check_duplicate_assets,
    check_asset_paths,
    check_debug_info,
    check_saver_def,
    check_init_op_sources,
]
