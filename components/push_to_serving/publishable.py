"""What push itself checks before publishing: the SavedModel TF Serving would load is all there.

The push step and `kfp-tfserving push` are used without the check step in front of them, so a truncated
saved_model.pb, a model without a {serve} graph or serving_default, or variables whose data files are
missing must not become a version. The full check (signatures, ops, a run) remains the check step's job.
"""

from __future__ import annotations

import re
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

from kfp_tfserving.components.common.errors import PublishError

SERVE_TAG = "serve"
SERVING_DEFAULT = "serving_default"
_VARIABLE_OPS = {"VarHandleOp", "VariableV2", "Variable"}
_DATA_FILE = re.compile(r"variables\.data-(\d+)-of-(\d+)")
_FIX = "push a complete SavedModel (the export step's output, or tf.saved_model.save's directory)"

# The few fields of tensorflow/core/protobuf/saved_model.proto push reads, with their real numbers: the
# wire format is parsed for real (a truncated file fails), without importing TensorFlow in the push step.
_SCHEMA = {
    "SavedModel": [("meta_graphs", 2, "MetaGraphDef", True)],
    "MetaGraphDef": [
        ("meta_info_def", 1, "MetaInfoDef", False),
        ("graph_def", 2, "GraphDef", False),
        ("signature_def", 5, "SignatureEntry", True),
    ],
    "SignatureEntry": [("key", 1, "string", False)],
    "MetaInfoDef": [("tags", 4, "string", True)],
    "GraphDef": [("node", 1, "NodeDef", True), ("library", 2, "FunctionDefLibrary", False)],
    "NodeDef": [("name", 1, "string", False), ("op", 2, "string", False)],
    "FunctionDefLibrary": [("function", 1, "FunctionDef", True)],
    "FunctionDef": [("node_def", 3, "NodeDef", True)],
}


def _saved_model_class():
    file = descriptor_pb2.FileDescriptorProto(
        name="kfp_tfserving_push_view.proto", package="kfp_tfserving_push"
    )
    for name, fields in _SCHEMA.items():
        msg = file.message_type.add(name=name)
        for field_name, number, kind, repeated in fields:
            field = msg.field.add(name=field_name, number=number)
            field.label = field.LABEL_REPEATED if repeated else field.LABEL_OPTIONAL
            if kind == "string":
                field.type = field.TYPE_STRING
            else:
                field.type = field.TYPE_MESSAGE
                field.type_name = f".kfp_tfserving_push.{kind}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("kfp_tfserving_push.SavedModel"))


def _has_variables(meta) -> bool:
    nodes = list(meta.graph_def.node) + [n for fn in meta.graph_def.library.function for n in fn.node_def]
    return any(n.op in _VARIABLE_OPS for n in nodes)


def _check_variables(model_dir: Path, meta) -> None:
    variables = model_dir / "variables"
    index = variables / "variables.index"
    if not index.is_file():
        if _has_variables(meta):
            raise PublishError(
                f"{model_dir}: the graph has variables but variables/variables.index is missing", _FIX
            )
        return
    shards = {m.groups() for m in map(_DATA_FILE.fullmatch, (p.name for p in variables.iterdir())) if m}
    counts = {int(total) for _, total in shards}
    if not shards:
        if _has_variables(meta):
            raise PublishError(f"{variables}: variables.index is there but no variables.data-* file", _FIX)
        return
    if len(counts) != 1:
        raise PublishError(f"{variables}: variables.data-* files of different checkpoints are mixed", _FIX)
    total = counts.pop()
    present = {int(n) for n, _ in shards}
    missing = sorted(set(range(total)) - present)
    if missing:
        raise PublishError(
            f"{variables}: variables.data-{missing[0]:05d}-of-{total:05d} is missing"
            + (f" (and {len(missing) - 1} more shard(s))" if len(missing) > 1 else ""),
            _FIX,
        )


def check_publishable(model_dir: Path, tags: tuple[str, ...] = (SERVE_TAG,)) -> None:
    """PublishError (one line) unless saved_model.pb parses, has the `tags` graph (TF Serving's
    --saved_model_tags) with serving_default, and the variables it needs are present."""
    pb = model_dir / "saved_model.pb"
    proto = _saved_model_class()()
    try:
        proto.ParseFromString(pb.read_bytes())
    except (message.DecodeError, OSError) as err:
        raise PublishError(f"{pb}: not a valid SavedModel proto ({type(err).__name__})", _FIX) from None
    serve = [m for m in proto.meta_graphs if set(m.meta_info_def.tags) == set(tags)]
    wanted = "{" + ",".join(sorted(tags)) + "}"
    if not serve:
        found = [sorted(m.meta_info_def.tags) for m in proto.meta_graphs]
        raise PublishError(f"{pb}: no meta graph with the tag-set {wanted} (found {found})", _FIX)
    signatures = sorted(s.key for s in serve[0].signature_def if not s.key.startswith("__"))
    if SERVING_DEFAULT not in signatures:
        raise PublishError(
            f"{pb}: the {wanted} graph has no {SERVING_DEFAULT} signature (has {signatures})",
            "export it through the export step, which adds serving_default",
        )
    _check_variables(model_dir, serve[0])
