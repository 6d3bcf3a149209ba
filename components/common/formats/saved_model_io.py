"""Read a SavedModel the way TF Serving does: its saved_model.pb protos, then its signatures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kfp_tfserving.components.common.errors import FormatError
from kfp_tfserving.components.common.formats.base import Tensors, TensorSpecInfo
from kfp_tfserving.components.common.formats.example_parsing import example_features
from kfp_tfserving.components.common.tfenv import import_tensorflow

SERVE_TAG = "serve"
SERVING_DEFAULT = "serving_default"


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
    tf = import_tensorflow()
    from tensorflow.core.protobuf import saved_model_pb2

    pb = model_dir / "saved_model.pb"
    pbtxt = model_dir / "saved_model.pbtxt"
    proto = saved_model_pb2.SavedModel()
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
    del tf
    return proto


def _tensor_spec(key: str, info, graph_def=None) -> TensorSpecInfo:
    tf = import_tensorflow()
    dtype = tf.dtypes.as_dtype(info.dtype).name if info.dtype else "invalid"
    if info.tensor_shape.unknown_rank:
        shape = None
    else:
        shape = tuple(None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim)
    features = None
    if dtype == "string" and graph_def is not None and info.name:
        features = example_features(graph_def, info.name)
    return TensorSpecInfo(key, dtype, shape, features)


def parse_tags(text: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """A tag-set as TF Serving's --saved_model_tags spells it ("serve,gpu"); empty means {serve}."""
    items = text.split(",") if isinstance(text, str) else list(text)
    tags = tuple(sorted({t.strip() for t in items if t.strip()}))
    return tags or (SERVE_TAG,)


def tag_set_text(tags: tuple[str, ...] | list[str] | set[str]) -> str:
    return "{" + ",".join(sorted(tags)) + "}"


def asset_file_defs(meta) -> list:
    """The asset tensors the loader feeds with paths inside the version's assets/, in its order: the meta
    graph's asset_file_def (TF2) when it has any, else the `saved_model_assets` collection (TF1 Builder
    exports), as loader.cc's GetAssetFileDefs reads them (duplicates kept: the C++ loader feeds each)."""
    from tensorflow.core.protobuf import meta_graph_pb2

    if meta.asset_file_def:
        return list(meta.asset_file_def)
    out = []
    collection = meta.collection_def.get("saved_model_assets")
    for packed in collection.any_list.value if collection is not None else []:
        asset = meta_graph_pb2.AssetFileDef()
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


def serve_meta_graph(proto, model_dir: Path, tags: tuple[str, ...] = (SERVE_TAG,)):
    """The meta graph whose tag-set equals `tags` exactly, as TF Serving picks it."""
    for meta in proto.meta_graphs:
        if set(meta.meta_info_def.tags) == set(tags):
            return meta
    tag_sets = ", ".join(tag_set_text(m.meta_info_def.tags) for m in proto.meta_graphs)
    raise FormatError(
        f"{model_dir}: no meta graph with the tag-set {tag_set_text(tags)} (it has {tag_sets or 'none'})",
        "name one of its tag-sets with --tags (e.g. --tags serve,gpu)",
    )


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


def read_signatures(model_dir: Path, tags: tuple[str, ...] = (SERVE_TAG,)) -> dict[str, SignatureInfo]:
    proto = read_saved_model_proto(model_dir)
    return signatures_of(serve_meta_graph(proto, model_dir, tags))


def run_signature(
    model_dir: Path, inputs: Tensors, signature: str = SERVING_DEFAULT, loaded: Any = None
) -> Tensors:
    """Call one signature of a SavedModel on numpy inputs, through TensorFlow's own loader."""
    tf = import_tensorflow()
    loaded = loaded if loaded is not None else tf.saved_model.load(str(model_dir))
    fn = loaded.signatures[signature]
    result = fn(**{k: tf.constant(v) for k, v in inputs.items()})
    return {k: np.asarray(v.numpy()) for k, v in result.items()}
