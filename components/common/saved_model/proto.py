"""Read a SavedModel the way TF Serving does: saved_model.pb, the meta graph whose tag-set equals the one
the server loads, its signatures, variables, assets and init op. No TensorFlow is imported (tf_protos)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfp_tfserving.components.common.errors import FormatError
from kfp_tfserving.components.common.saved_model.example_parsing import example_features
from kfp_tfserving.components.common.saved_model.tags import SERVE, Tags, tag_set_text
from kfp_tfserving.components.common.saved_model.tensor_spec import TensorSpecInfo, dtype_name
from kfp_tfserving.components.common.saved_model.tf_protos import meta_graph_pb2, saved_model_pb2

SERVING_DEFAULT = "serving_default"
# The init op TF Serving runs after the restore: this signature's output, else the first of these
# collections that names one (TensorFlow's loader reads them in this order).
INIT_OP_SIGNATURE = "__saved_model_init_op"
INIT_OP_COLLECTIONS = ("saved_model_main_op", "legacy_init_op")
# Ops that hold a variable: resource variables (TF2, TF1 with use_resource) and TF1 ref variables.
VARIABLE_OPS = frozenset({"VarHandleOp", "VariableV2", "Variable"})


@dataclass
class SignatureInfo:
    name: str
    method_name: str
    inputs: list[TensorSpecInfo]
    outputs: list[TensorSpecInfo]

    def as_dict(self) -> dict[str, Any]:
        def tensors(specs: list[TensorSpecInfo]) -> dict[str, Any]:
            return {
                s.name: {
                    "dtype": s.dtype,
                    "shape": None if s.shape is None else [-1 if d is None else d for d in s.shape],
                }
                for s in specs
            }

        return {
            "method_name": self.method_name,
            "inputs": tensors(self.inputs),
            "outputs": tensors(self.outputs),
        }


def read_saved_model_proto(model_dir: Path):
    """The parsed SavedModel proto; FormatError when it is missing or damaged."""
    pb = model_dir / "saved_model.pb"
    pbtxt = model_dir / "saved_model.pbtxt"
    proto = saved_model_pb2().SavedModel()
    try:
        if pb.exists():
            proto.ParseFromString(pb.read_bytes())
        elif pbtxt.exists():
            from google.protobuf import text_format

            text_format.Parse(pbtxt.read_text(), proto)
        else:
            raise FormatError(f"{model_dir}: no saved_model.pb", "point at the SavedModel directory itself")
    except FormatError:
        raise
    except Exception as err:
        raise FormatError(
            f"{pb if pb.exists() else pbtxt}: not a valid SavedModel proto ({type(err).__name__})",
            "the file is damaged or is not a SavedModel",
        ) from None
    return proto


def _tensor_spec(key: str, info, graph_def=None) -> TensorSpecInfo:
    dtype = dtype_name(info.dtype)
    if info.tensor_shape.unknown_rank:
        shape = None
    else:
        shape = tuple(None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim)
    features = None
    if dtype == "string" and graph_def is not None and info.name:
        features = example_features(graph_def, info.name)
    return TensorSpecInfo(key, dtype, shape, features)


def asset_file_defs(meta) -> list:
    """The asset tensors the loader feeds with paths inside the version's assets/, in its order: the meta
    graph's asset_file_def (TF2) when it has any, else the `saved_model_assets` collection (TF1 Builder
    exports), as loader.cc's GetAssetFileDefs reads them (duplicates kept: the C++ loader feeds each)."""
    if meta.asset_file_def:
        return list(meta.asset_file_def)
    out = []
    collection = meta.collection_def.get("saved_model_assets")
    for packed in collection.any_list.value if collection is not None else []:
        asset = meta_graph_pb2().AssetFileDef()
        packed.Unpack(asset)
        out.append(asset)
    return out


def duplicate_asset_tensors(meta) -> list[str]:
    """Asset tensors listed by more than one AssetFileDef: TensorFlow's C++ loader feeds each entry, and
    Session::Run refuses a tensor fed twice ('Endpoint "asset_path:0" fed more than once')."""
    seen: dict[str, int] = {}
    for asset in asset_file_defs(meta):
        seen[asset.tensor_info.name] = seen.get(asset.tensor_info.name, 0) + 1
    return [name for name, count in seen.items() if count > 1]


class NoMetaGraph(FormatError):
    """The SavedModel has no meta graph with exactly the asked tag-set: TF Serving cannot load it."""

    def __init__(self, model_dir: Path, proto, tags: Tags):
        self.tags = tuple(sorted(tags))
        self.found = [tuple(sorted(m.meta_info_def.tags)) for m in proto.meta_graphs]
        tag_sets = ", ".join(tag_set_text(t) for t in self.found)
        super().__init__(
            f"{model_dir}: no meta graph with the tag-set {tag_set_text(tags)} (it has {tag_sets or 'none'})",
            "name one of its tag-sets with --tags (e.g. --tags serve,gpu)",
        )


def meta_graph(proto, model_dir: Path, tags: Tags = SERVE):
    """The meta graph whose tag-set equals `tags` exactly, as TF Serving picks it; NoMetaGraph if none."""
    for meta in proto.meta_graphs:
        if set(meta.meta_info_def.tags) == set(tags):
            return meta
    raise NoMetaGraph(model_dir, proto, tags)


def init_op_source(meta) -> str:
    """Where LoadSavedModel takes the init op from (loader.cc GetInitOp): the init signature, else the
    saved_model_main_op collection, else legacy_init_op; '' when there is none."""
    if INIT_OP_SIGNATURE in meta.signature_def:
        return INIT_OP_SIGNATURE
    return next((key for key in INIT_OP_COLLECTIONS if key in meta.collection_def), "")


def init_op_name(meta) -> str:
    """The init op LoadSavedModel runs, as its source names it; '' when there is none, or when the source
    does not name exactly one (the loader's own error then)."""
    source = init_op_source(meta)
    if source == INIT_OP_SIGNATURE:
        outputs = meta.signature_def[INIT_OP_SIGNATURE].outputs
        return outputs[INIT_OP_SIGNATURE].name if INIT_OP_SIGNATURE in outputs else ""
    if source:
        values = meta.collection_def[source].node_list.value
        return values[0] if len(values) == 1 else ""
    return ""


def is_tf1_meta_graph(meta) -> bool:
    """Written by TF1's Builder (no object graph): its signature_def map is the whole truth."""
    return not meta.object_graph_def.nodes


def has_variables(meta) -> bool:
    """Whether the graph or any of its functions holds a variable (then variables/ must be there)."""
    nodes = [*meta.graph_def.node, *(n for fn in meta.graph_def.library.function for n in fn.node_def)]
    return any(node.op in VARIABLE_OPS for node in nodes)


def signatures_of(meta) -> dict[str, SignatureInfo]:
    out = {}
    for name, sig in sorted(meta.signature_def.items()):
        if name.startswith("__"):  # TF-internal entries such as __saved_model_init_op
            continue
        out[name] = SignatureInfo(
            name,
            sig.method_name,
            [_tensor_spec(k, v, meta.graph_def) for k, v in sorted(sig.inputs.items())],
            [_tensor_spec(k, v) for k, v in sorted(sig.outputs.items())],
        )
    return out


def read_signatures(model_dir: Path, tags: Tags = SERVE) -> dict[str, SignatureInfo]:
    proto = read_saved_model_proto(model_dir)
    return signatures_of(meta_graph(proto, model_dir, tags))
