"""Checks that read the SavedModel's protos only, as tensorflow_model_server reads them at load time.

Checks 1-7 live here; 8-11 and 14 in their own modules. STATIC_CHECKS runs them all, in order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from kfp_tfserving.components.check_signatures.contract import check_contract, contract_names
from kfp_tfserving.components.check_signatures.findings import ERROR, WARNING, Finding
from kfp_tfserving.components.check_signatures.graph_checks import check_initializer_files, check_ops
from kfp_tfserving.components.check_signatures.loader_checks import LOADER_CHECKS
from kfp_tfserving.components.check_signatures.signature_rules import check_signature_rules
from kfp_tfserving.components.check_signatures.version_check import check_version
from kfp_tfserving.components.common.saved_model.proto import (
    INIT_OP_COLLECTIONS,
    INIT_OP_SIGNATURE,
    SERVING_DEFAULT,
    NoMetaGraph,
    has_variables,
    init_op_source,
    meta_graph,
    signatures_of,
)
from kfp_tfserving.components.common.saved_model.tags import SERVE, Tags, tag_set_text

# dtypes TF Serving's REST API encodes to and from JSON.
REST_DTYPES = {
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint32",
    "uint64",
    "string",
    "bool",
}
AUTO_NAME = re.compile(r"^(keras_tensor(_\d+)?|args_\d+|output_\d+|input_\d+_\d+|unknown(_\d+)?)$")

Check = Callable[["ModelView"], list[Finding]]


class ModelView:
    """What the checks look at: the directory, its parsed proto and the meta graph TF Serving loads (the one
    tagged exactly `tags`, its --saved_model_tags; None if there is none)."""

    def __init__(
        self,
        model_dir: Path,
        proto,
        contract: dict | None = None,
        serving_tf_version: str = "",
        tags: Tags = SERVE,
    ):
        self.model_dir = model_dir
        self.proto = proto
        self.contract = contract
        self.serving_tf_version = serving_tf_version
        self.tags = tuple(tags)
        try:
            self.serve = meta_graph(proto, model_dir, self.tags)
        except NoMetaGraph:
            self.serve = None  # check_tags reports it
        self.signatures = signatures_of(self.serve) if self.serve is not None else {}


def check_variables(view: ModelView) -> list[Finding]:
    if view.serve is None:
        return []
    index = view.model_dir / "variables" / "variables.index"
    if has_variables(view.serve) and not index.is_file():
        return [
            Finding(
                "missing-variables",
                ERROR,
                "the graph has variables but variables/variables.index is missing",
                "copy the whole SavedModel directory, variables/ included",
            )
        ]
    return []


def _graph_lacks(graph_def, tensor_name: str) -> bool:
    return tensor_name.lstrip("^").split(":")[0] not in {node.name for node in graph_def.node}


def check_graph_references(view: ModelView) -> list[Finding]:
    """Every tensor a signature names, and the init op, exist in the graph TF Serving imports."""
    if view.serve is None:
        return []
    graph, found = view.serve.graph_def, []
    for name, sig in sorted(view.serve.signature_def.items()):
        tensors = [*sig.inputs.items(), *sig.outputs.items()]
        for key, info in tensors:
            if info.name and _graph_lacks(graph, info.name):
                init = name == INIT_OP_SIGNATURE
                found.append(
                    Finding(
                        "init-op-missing" if init else "signature-tensor-missing",
                        ERROR,
                        f"names tensor '{info.name}', which the graph does not have; TF Serving fails "
                        + ("the load" if init else "every request"),
                        "export the model again; do not edit signature_defs by hand",
                        "" if init else name,
                        key,
                    )
                )
    for key in [k for k in INIT_OP_COLLECTIONS if k == init_op_source(view.serve)]:  # the one it runs
        collection = view.serve.collection_def.get(key)
        for op_name in collection.node_list.value if collection is not None else []:
            if _graph_lacks(graph, op_name):
                found.append(
                    Finding(
                        "init-op-missing",
                        ERROR,
                        f"the {key} collection names op '{op_name}', which the graph does not have; "
                        "TF Serving fails the load",
                        "export the model again with a main_op that is part of the graph",
                    )
                )
    return found


def check_tags(view: ModelView) -> list[Finding]:
    if view.serve is not None:
        return []
    tag_sets = ", ".join(tag_set_text(m.meta_info_def.tags) for m in view.proto.meta_graphs) or "none"
    fix = (
        "re-export with tags=['serve'] (tf.saved_model.save does this), or, if TF Serving runs with "
        "--saved_model_tags naming one of those tag-sets, check with the same --saved_model_tags"
        if view.tags == SERVE
        else "check with the --saved_model_tags TF Serving runs with, or export with --tags naming that tag-set"
    )
    return [
        Finding(
            "no-serve-tag",
            ERROR,
            f"no meta graph with exactly the tag-set {tag_set_text(view.tags)}, the one TF Serving loads "
            f"(it has {tag_sets})",
            fix,
        )
    ]


def check_signature_presence(view: ModelView) -> list[Finding]:
    if view.serve is None:
        return []
    found = []
    if SERVING_DEFAULT not in view.signatures:
        found.append(
            Finding(
                "no-serving-default",
                ERROR,
                f"no serving_default signature (has {sorted(view.signatures)})",
                "export with --signature NAME to choose the one to serve",
            )
        )
    for name, sig in view.signatures.items():
        if not sig.inputs or not sig.outputs:
            found.append(
                Finding(
                    "empty-signature",
                    ERROR,
                    "the signature has no inputs or no outputs",
                    "export a signature that takes and returns tensors",
                    signature=name,
                )
            )
    return found


def check_tensor_kinds(view: ModelView) -> list[Finding]:
    found = []
    for name, sig in sorted(view.serve.signature_def.items() if view.serve else []):
        for role, tensors in (("input", sig.inputs), ("output", sig.outputs)):
            for key, info in sorted(tensors.items()):
                encoding = info.WhichOneof("encoding")
                if encoding != "name":
                    found.append(
                        Finding(
                            "non-dense-tensor",
                            ERROR,
                            f"{role} is a {encoding} tensor, not a dense one",
                            "serve dense tensors (convert sparse/ragged inside the model)",
                            name,
                            key,
                        )
                    )
    return found


def check_dtypes(view: ModelView) -> list[Finding]:
    found = []
    for name, sig in view.signatures.items():
        for spec in sig.inputs + sig.outputs:
            if spec.dtype not in REST_DTYPES:
                found.append(
                    Finding(
                        "unsupported-dtype",
                        ERROR,
                        f"dtype {spec.dtype} cannot travel through TF Serving's REST API",
                        "cast to float32 (or int/string) inside the serving signature",
                        name,
                        spec.name,
                    )
                )
    return found


def _batch_problem(role: str, shape: tuple[int | None, ...] | None) -> tuple[str, str, str, str] | None:
    """Code, severity, message and fix for a tensor whose leading dimension cannot be the batch."""
    if shape is None:
        return None
    if len(shape) == 0:
        if role != "output":
            return None
        return (
            "scalar-output",
            WARNING,
            "rank-0 output: row-format JSON and batching need a batch dimension",
            "return a tensor with a leading batch dimension",
        )
    if shape[0] is None:
        return None
    return (
        "fixed-batch",
        WARNING,
        f"{role} dim 0 is fixed at {shape[0]}, not -1",
        "export with a None batch dimension so any batch size is accepted",
    )


def check_batch_dimension(view: ModelView) -> list[Finding]:
    found = []
    for name, sig in view.signatures.items():
        for role, specs in (("input", sig.inputs), ("output", sig.outputs)):
            for spec in specs:
                problem = _batch_problem(role, spec.shape)
                if problem:
                    found.append(Finding(*problem, name, spec.name))
    return found


def check_names(view: ModelView) -> list[Finding]:
    found = []
    intended = contract_names(view.contract)
    for name, sig in view.signatures.items():
        for spec in sig.inputs + sig.outputs:
            if AUTO_NAME.match(spec.name) and (name, spec.name) not in intended:
                found.append(
                    Finding(
                        "auto-generated-name",
                        WARNING,
                        f"'{spec.name}' is an auto-generated name clients must hard-code",
                        "name the model's Input and output layers",
                        name,
                        spec.name,
                    )
                )
    return found


STATIC_CHECKS: list[Check] = [
    check_variables,
    check_tags,
    check_signature_presence,
    check_graph_references,
    check_tensor_kinds,
    check_dtypes,
    check_batch_dimension,
    check_names,
    check_signature_rules,
    check_ops,
    check_version,
    check_initializer_files,
    check_contract,
    *LOADER_CHECKS,
]
