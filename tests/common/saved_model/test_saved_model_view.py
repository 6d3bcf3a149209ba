"""The SavedModel view: TensorFlow-free protos, dtype names, tag-sets, the meta graph, variables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kfp_tfserving.components.common.saved_model.proto import (
    NoMetaGraph,
    has_variables,
    meta_graph,
    read_saved_model_proto,
)
from kfp_tfserving.components.common.saved_model.tags import SERVE, parse_tags, tag_set_text, tags_option
from kfp_tfserving.components.common.saved_model.tensor_spec import dtype_name
from kfp_tfserving.components.common.saved_model.tf_protos import meta_graph_pb2, saved_model_pb2, types_pb2


def test_reading_a_saved_model_imports_no_tensorflow(tmp_path: Path):
    """The protos come from TensorFlow's own generated modules, without the runtime; importing TensorFlow
    afterwards still works and shares the message classes."""
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from kfp_tfserving.components.common.saved_model.proto import read_signatures\n"
        "from kfp_tfserving.components.common.saved_model.tf_protos import saved_model_pb2\n"
        "sigs = read_signatures(Path(sys.argv[1]))\n"
        "light = 'tensorflow' in sys.modules\n"
        "import tensorflow as tf\n"
        "from tensorflow.core.protobuf import saved_model_pb2 as real\n"
        "print(json.dumps({'tf_imported': light, 'signatures': sorted(sigs), 'same': real is saved_model_pb2(),\n"
        "                  'tf_works': float(tf.reduce_sum(tf.ones(3)))}))\n"
    )
    import tensorflow as tf

    module = tf.Module()
    module.f = tf.function(lambda x: {"y": x * 2}, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.f})
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"tf_imported": False, "signatures": ["serving_default"], "same": True, "tf_works": 3.0}


def test_dtype_names_are_tensorflows(tf):
    for value in types_pb2().DataType.values():
        if value:
            assert dtype_name(value) == tf.dtypes.as_dtype(value).name
    assert dtype_name(0) == "invalid"


@pytest.mark.parametrize(
    "spelled, tags",
    [("serve", ("serve",)), ("serve,gpu", ("gpu", "serve")), (" gpu , serve,serve", ("gpu", "serve")),
     ("", SERVE), (None, SERVE), (["tpu", "serve"], ("serve", "tpu")), ({"serve"}, SERVE)],
)  # fmt: skip
def test_one_tag_set_type(spelled, tags):
    assert parse_tags(spelled) == tags


def test_tag_set_spellings():
    assert tag_set_text(("serve", "gpu")) == "{gpu,serve}"
    assert tags_option({"serve", "gpu"}) == "gpu,serve"


def _saved_model(tmp_path: Path, *tag_sets: list[str]) -> Path:
    proto = saved_model_pb2().SavedModel()
    for tags in tag_sets:
        proto.meta_graphs.add().meta_info_def.tags.extend(tags)
    (tmp_path / "saved_model.pb").write_bytes(proto.SerializeToString())
    return tmp_path


def test_the_meta_graph_is_the_one_with_exactly_the_tag_set(tmp_path: Path):
    proto = read_saved_model_proto(_saved_model(tmp_path, ["train"], ["serve", "gpu"], ["serve"]))
    assert list(meta_graph(proto, tmp_path).meta_info_def.tags) == ["serve"]
    assert list(meta_graph(proto, tmp_path, ("gpu", "serve")).meta_info_def.tags) == ["serve", "gpu"]
    with pytest.raises(NoMetaGraph, match=r"no meta graph with the tag-set \{tpu\} \(it has \{train\}, "):
        meta_graph(proto, tmp_path, ("tpu",))


def test_damaged_and_missing_protos_are_format_errors(tmp_path: Path):
    from kfp_tfserving.components.common.errors import FormatError

    with pytest.raises(FormatError, match="no saved_model.pb"):
        read_saved_model_proto(tmp_path)
    (tmp_path / "saved_model.pb").write_bytes(b"\x0a\xff\xff")
    with pytest.raises(FormatError, match="not a valid SavedModel proto"):
        read_saved_model_proto(tmp_path)


@pytest.mark.parametrize("op", ["VarHandleOp", "VariableV2", "Variable"])
@pytest.mark.parametrize("where", ["graph", "function"])
def test_every_variable_op_counts_in_the_graph_and_its_functions(op: str, where: str):
    meta = meta_graph_pb2().MetaGraphDef()
    nodes = meta.graph_def.node if where == "graph" else meta.graph_def.library.function.add().node_def
    nodes.add(name="x", op="Placeholder")
    assert not has_variables(meta)
    nodes.add(name="v", op=op)
    assert has_variables(meta)
