"""What a signature's string inputs hold, read from the graph: tf.Example protos, encoded images, or words.

Sample inputs for a string input must be what the model parses: serialized tf.Examples when a ParseExample
op reads it, encoded images when it reaches an image decoder, entries of the model's own lookup tables when
it has them, else short ASCII tokens. The graph is walked forward from the input's placeholder into the
functions it is passed to (call ops, If/While/Case branches), as TF2 SavedModels do their work there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from kfp_tfserving.components.common.formats.base import ExampleFeature, TensorSpecInfo
from kfp_tfserving.components.common.saved_model.example_parsing import example_features
from kfp_tfserving.components.common.saved_model.proto import asset_file_defs

PARSE_OPS = ("ParseExample", "ParseExampleV2")
# Image decoders -> the encoding generated for them (DecodeImage takes any; JPEG is what clients send).
IMAGE_DECODERS = {
    "DecodeJpeg": "jpeg",
    "DecodeAndCropJpeg": "jpeg",
    "DecodeImage": "jpeg",
    "DecodePng": "png",
    "DecodeBmp": "bmp",
    "DecodeGif": "gif",
}
_FORMAT_PREFERENCE = ("jpeg", "png", "bmp", "gif")
_TABLE_KEY_OPS = {
    "LookupTableImportV2": 1,
    "LookupTableImport": 1,
    "InitializeTableV2": 1,
    "InitializeTable": 1,
}
_TEXT_FILE_TABLE_OPS = ("InitializeTableFromTextFileV2", "InitializeTableFromTextFile")
# Function-valued attributes of ops that call functions -> how many leading inputs are not passed on.
_CALL_ATTRS = {"f": 0, "then_branch": 1, "else_branch": 1, "body": 0, "cond": 0, "branches": 1}
VOCABULARY_LIMIT = 64


def _name(ref: str) -> str:
    return ref.lstrip("^").split(":")[0]


class GraphWalk:
    """The graph and its function library as scopes of nodes (scope None is the top-level graph)."""

    def __init__(self, meta):
        self.meta = meta
        self.functions = {f.signature.name: f for f in meta.graph_def.library.function}
        self.scopes: dict[str | None, list[Any]] = {None: list(meta.graph_def.node)}
        self.scopes.update({name: list(f.node_def) for name, f in self.functions.items()})
        self._consumers = {scope: self._consumer_map(nodes) for scope, nodes in self.scopes.items()}
        self._call_sites: dict[str, list[tuple[str | None, Any, int]]] = {}
        for scope, nodes in self.scopes.items():
            for node in nodes:
                for callee, offset in self.callees(node):
                    self._call_sites.setdefault(callee, []).append((scope, node, offset))

    @staticmethod
    def _consumer_map(nodes) -> dict[str, list[tuple[Any, int]]]:
        out: dict[str, list[tuple[Any, int]]] = {}
        for node in nodes:
            data = [i for i in node.input if not i.startswith("^")]
            for index, ref in enumerate(data):
                out.setdefault(_name(ref), []).append((node, index))
        return out

    def callees(self, node) -> Iterator[tuple[str, int]]:
        """(function name, count of leading inputs not passed) for each function the node calls."""
        if node.op in self.functions:
            yield node.op, 0
        for attr, offset in _CALL_ATTRS.items():
            if attr not in node.attr:
                continue
            value = node.attr[attr]
            names = [value.func.name] if value.HasField("func") else [f.name for f in value.list.func]
            yield from ((n, offset) for n in names if n in self.functions)

    def nodes_fed_by(self, tensor_name: str) -> list[Any]:
        """Every node a tensor of the top-level graph flows into, inside called functions too."""
        reached: list[Any] = []
        seen: set[tuple[str | None, str]] = set()
        stack: list[tuple[str | None, str]] = [(None, _name(tensor_name))]
        while stack:
            scope, name = stack.pop()
            if (scope, name) in seen:
                continue
            seen.add((scope, name))
            for node, index in self._consumers[scope].get(name, ()):
                reached.append(node)
                stack.append((scope, node.name))
                for callee, offset in self.callees(node):
                    args = self.functions[callee].signature.input_arg
                    if offset <= index < offset + len(args):
                        stack.append((callee, args[index - offset].name))
        return reached

    def const_strings(self, scope: str | None, ref: str, depth: int = 0) -> list[str]:
        """The strings of a constant, followed through Identity ops and function arguments to its call sites."""
        nodes = {n.name: n for n in self.scopes[scope]}
        name = _name(ref)
        while name in nodes and nodes[name].op == "Identity" and nodes[name].input:
            name = _name(nodes[name].input[0])
        node = nodes.get(name)
        if node is not None:
            if node.op != "Const" or node.attr["dtype"].type != 7:  # 7: DT_STRING
                return []
            return [v.decode("utf-8", "replace") for v in node.attr["value"].tensor.string_val]
        if scope is None or depth > 8:
            return []
        args = [a.name for a in self.functions[scope].signature.input_arg]
        if name not in args:
            return []
        values: list[str] = []
        for caller, call, offset in self._call_sites.get(scope, ()):
            data = [i for i in call.input if not i.startswith("^")]
            position = offset + args.index(name)
            if position < len(data):
                values += self.const_strings(caller, data[position], depth + 1)
        return values


def image_format(walk: GraphWalk, tensor_name: str) -> str | None:
    """The encoding to generate for a string input that reaches an image decoder, else None."""
    found = {IMAGE_DECODERS[n.op] for n in walk.nodes_fed_by(tensor_name) if n.op in IMAGE_DECODERS}
    return next((f for f in _FORMAT_PREFERENCE if f in found), None)


def _asset_files(meta, model_dir: Path) -> list[Path]:
    paths = [model_dir / "assets" / d.filename for d in asset_file_defs(meta)]
    return [p for p in paths if p.is_file()]


def _first_lines(path: Path, limit: int) -> list[str]:
    lines: list[str] = []
    try:
        with path.open(encoding="utf-8") as text:
            for line in text:
                token = line.rstrip("\r\n").split("\t")[0]
                if token:
                    lines.append(token)
                if len(lines) >= limit:
                    break
    except (OSError, UnicodeDecodeError):
        return []  # a binary asset (a tokenizer model, say): not a vocabulary file
    return lines


def table_vocabulary(walk: GraphWalk, model_dir: Path | None) -> tuple[str, ...]:
    """String keys of the model's lookup tables: constants the tables import, then vocabulary asset files."""
    tokens: list[str] = []
    reads_text_files = False
    for scope, nodes in walk.scopes.items():
        for node in nodes:
            reads_text_files = reads_text_files or node.op in _TEXT_FILE_TABLE_OPS
            slot = _TABLE_KEY_OPS.get(node.op)
            if slot is not None and len(node.input) > slot:
                tokens += walk.const_strings(scope, node.input[slot])
    if reads_text_files and model_dir is not None:
        for path in _asset_files(walk.meta, model_dir):
            tokens += _first_lines(path, VOCABULARY_LIMIT)
    unique = [t for t in dict.fromkeys(tokens) if t.strip()]
    return tuple(unique[:VOCABULARY_LIMIT])


def function_example_features(meta) -> tuple[ExampleFeature, ...] | None:
    """The features of the first ParseExample op found in the function library (None if there is none)."""
    for fn in meta.graph_def.library.function:
        body = SimpleNamespace(node=list(fn.node_def))  # the shape example_features reads a graph in
        for node in fn.node_def:
            if node.op in PARSE_OPS and node.input:
                features = example_features(body, node.input[0])
                if features:
                    return features
    return None


def with_example_features(meta, specs: list[TensorSpecInfo]) -> list[TensorSpecInfo]:
    """The specs, string inputs of rank <= 1 marked as tf.Example when only a function parses them.

    signatures_of() finds ParseExample ops in the top-level graph (TF1 Estimator exports); a TF2
    SavedModel (TFX `serve_tf_examples_fn`) parses inside its function library, searched here.
    """
    candidates = [
        s
        for s in specs
        if s.dtype == "string" and s.example_features is None and (s.shape is None or len(s.shape) <= 1)
    ]
    if not candidates or any(s.example_features for s in specs):
        return specs
    features = function_example_features(meta)
    if not features:
        return specs
    return [dataclasses.replace(s, example_features=features) if s in candidates else s for s in specs]


def describe_string_inputs(
    meta, signature: str, specs: list[TensorSpecInfo], model_dir: Path | None = None
) -> list[TensorSpecInfo]:
    """`specs` (inputs of `signature` in `meta`, matched by name) with what each string input holds."""
    specs = with_example_features(meta, specs)
    tensors = meta.signature_def[signature].inputs if signature in meta.signature_def else {}
    strings = [s for s in specs if s.dtype == "string" and not s.example_features and s.name in tensors]
    if not strings:
        return specs
    walk = GraphWalk(meta)
    vocabulary: tuple[str, ...] | None = None
    out = []
    for spec in specs:
        if spec in strings:
            found = image_format(walk, tensors[spec.name].name)
            if found:
                spec = dataclasses.replace(spec, image_format=found)
            else:
                vocabulary = table_vocabulary(walk, model_dir) if vocabulary is None else vocabulary
                spec = dataclasses.replace(spec, vocabulary=vocabulary or None)
        out.append(spec)
    return out


def described_inputs(
    model_dir: Path,
    specs: list[TensorSpecInfo] | None = None,
    signature: str = "serving_default",
    tags: tuple[str, ...] = ("serve",),
) -> list[TensorSpecInfo]:
    """The inputs of a signature of the SavedModel's `tags` graph (or `specs`, by name), described as above."""
    from kfp_tfserving.components.common.saved_model.proto import (
        meta_graph,
        read_saved_model_proto,
        signatures_of,
    )

    meta = meta_graph(read_saved_model_proto(model_dir), model_dir, tags)
    if specs is None:
        specs = signatures_of(meta)[signature].inputs
    return describe_string_inputs(meta, signature, specs, model_dir)
