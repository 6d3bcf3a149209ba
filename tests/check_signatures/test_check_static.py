"""The check step's proto-level checks (1-11, 14), each on a model built to break it."""

from __future__ import annotations

import numpy as np
import pytest
from check_builders import (
    codes,
    copy_model,
    linear_module,
    rewrite_proto,
    save_module,
    serve_meta,
    static_findings,
    tf1_builder,
    tf1_classifier,
    tf1_predict,
)

from kfp_tfserving.components.check_signatures.check_report import RuntimeFacts
from kfp_tfserving.components.check_signatures.check_step import check_model
from kfp_tfserving.components.check_signatures.contract import parse_contract
from kfp_tfserving.components.check_signatures.findings import ERROR, WARNING
from kfp_tfserving.components.check_signatures.version_check import target_version
from kfp_tfserving.components.common.errors import UserError


@pytest.fixture(scope="module")
def linear(tmp_path_factory, tf):
    return linear_module(tmp_path_factory.mktemp("static") / "linear")


def by_code(findings, code):
    return [f for f in findings if f.code == code]


def test_good_tf2_and_tf1_models_have_no_static_finding(linear, tmp_path, tf):
    assert static_findings(linear) == []
    assert static_findings(tf1_builder(tmp_path / "tf1", tf1_predict)) == []
    assert static_findings(tf1_builder(tmp_path / "cls", tf1_classifier)) == []


def test_1_damaged_proto_and_missing_variables(linear, tmp_path):
    damaged = copy_model(linear, tmp_path / "damaged")
    (damaged / "saved_model.pb").write_bytes(b"\x08\x01garbage")
    report = check_model(damaged)
    assert [f.code for f in report.findings] == ["unreadable-saved-model"] and not report.passed

    no_vars = copy_model(linear, tmp_path / "novars")
    for f in (no_vars / "variables").iterdir():
        f.unlink()
    found = by_code(static_findings(no_vars), "missing-variables")
    assert found and found[0].severity == ERROR
    # Without variables/ nothing is run: the finding stands alone, no fresh process is started.
    report = check_model(no_vars)
    assert report.runtime == RuntimeFacts() and "missing-variables" in codes(report.findings)


def test_2_tag_set_must_be_exactly_serve(tmp_path, tf):
    model = tf1_builder(tmp_path / "gpu", tf1_predict, tags=("serve", "gpu"))
    found = static_findings(model)
    assert codes(found) == {"no-serve-tag"}
    assert "{gpu,serve}" in found[0].message


def test_3_serving_default_and_non_empty_signatures(tmp_path, tf):
    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def predict(x):
        return {"y": x + 1.0}

    model = save_module(tmp_path / "nodefault", {"predict": predict})
    assert codes(static_findings(model)) == {"no-serving-default"}

    def no_outputs(v1):
        x = v1.placeholder(np.float32, [None, 2], name="x")
        sig = v1.saved_model.build_signature_def(
            {"x": v1.saved_model.build_tensor_info(x)}, {}, "tensorflow/serving/predict"
        )
        return {"serving_default": sig}

    found = static_findings(tf1_builder(tmp_path / "empty", no_outputs))
    assert [(f.code, f.signature) for f in found] == [("empty-signature", "serving_default")]


def test_4_sparse_tensors_are_findings(tmp_path, tf):
    def sparse(v1):
        x = v1.sparse_placeholder(np.float32, name="x")
        y = v1.sparse.reduce_sum(x, axis=1, keepdims=True)
        info = v1.saved_model.build_tensor_info
        sig = v1.saved_model.build_signature_def({"x": info(x)}, {"y": info(y)}, "tensorflow/serving/predict")
        return {"serving_default": sig}

    found = by_code(static_findings(tf1_builder(tmp_path / "sparse", sparse)), "non-dense-tensor")
    assert [(f.tensor, f.severity) for f in found] == [("x", ERROR)]
    assert "coo_sparse" in found[0].message


def test_5_dtypes_rest_cannot_carry(tmp_path, tf):
    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float16, name="x")])
    def serve(x):
        return {"y": tf.cast(x, tf.float32), "z": tf.complex(tf.cast(x, tf.float32), 0.0)}

    found = by_code(
        static_findings(save_module(tmp_path / "half", {"serving_default": serve})), "unsupported-dtype"
    )
    assert {(f.tensor, f.severity) for f in found} == {("x", ERROR), ("z", ERROR)}


def test_6_batch_dimension(tmp_path, tf):
    @tf.function(input_signature=[tf.TensorSpec([2, 3], tf.float32, name="x")])
    def serve(x):
        return {"rows": x * 2.0, "total": tf.reduce_sum(x)}

    found = static_findings(save_module(tmp_path / "fixed", {"serving_default": serve}))
    assert {(f.code, f.tensor) for f in found} == {
        ("fixed-batch", "x"),
        ("fixed-batch", "rows"),
        ("scalar-output", "total"),
    }
    assert {f.severity for f in found} == {WARNING}  # TF Serving still serves it


def test_7_auto_generated_names_unless_the_contract_asks(tmp_path, tf):
    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
    def serve(*args):
        return args[0] * 2.0

    model = save_module(tmp_path / "auto", {"serving_default": serve})
    found = by_code(static_findings(model), "auto-generated-name")
    assert {f.tensor for f in found} == {"args_0", "output_0"}
    contract = parse_contract(
        "serving_default: {inputs: {args_0: {dtype: float32}}, outputs: {output_0: {dtype: float32}}}",
        "c.yaml",
    )
    assert static_findings(model, contract) == []


def test_8_classify_and_regress_rules(tmp_path, tf):
    def bad(v1):
        x = v1.placeholder(np.float32, [None, 3], name="x")
        ex = v1.placeholder(np.str_, [None], name="ex")
        info = v1.saved_model.build_tensor_info
        ints = v1.cast(v1.ones_like(x), np.int32)
        return {
            "serving_default": v1.saved_model.predict_signature_def({"x": x}, {"y": x}),
            # A classify method on a predict-shaped signature: float input, wrong output names.
            "cls": v1.saved_model.build_signature_def(
                {"x": info(x)}, {"y": info(x)}, "tensorflow/serving/classify"
            ),
            "cls_types": v1.saved_model.build_signature_def(
                {"inputs": info(ex)},
                {"scores": info(ints), "classes": info(v1.strings.as_string(x[:, :2]))},
                "tensorflow/serving/classify",
            ),
            "reg": v1.saved_model.build_signature_def(
                {"inputs": info(ex)}, {"outputs": info(x)}, "tensorflow/serving/regress"
            ),
            "odd": v1.saved_model.build_signature_def({"x": info(x)}, {"y": info(x)}, "my/method"),
        }

    found = by_code(static_findings(tf1_builder(tmp_path / "rules", bad)), "signature-rules")
    where = {(f.signature, f.tensor) for f in found}
    assert ("cls", "") in where  # needs 'inputs' and classes/scores
    assert ("cls_types", "scores") in where  # int32 scores
    # classes are 2 columns wide (x[:, :2]), scores 3 (x's width)
    assert any("2 columns" in f.message and "has 3" in f.message for f in found if f.signature == "cls_types")
    assert ("reg", "outputs") in where  # [-1, 3] is not one value per example
    assert ("odd", "") in where
    assert "serving_default" not in {f.signature for f in found}
    assert {f.severity for f in found} == {ERROR}


def test_9_denied_ops_and_xla(tmp_path, tf):
    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def serve(x):
        tf.print("request", x)
        y = tf.py_function(lambda t: t * 2.0, [x], tf.float32)
        return {"y": tf.reshape(y, [-1, 2])}

    found = by_code(static_findings(save_module(tmp_path / "py", {"serving_default": serve})), "denied-op")
    assert {f.tensor for f in found} == {"EagerPyFunc", "PrintV2"}
    assert {f.severity for f in found} == {ERROR}

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")], jit_compile=True)
    def compiled(x):
        return {"y": x * 2.0}

    found = static_findings(save_module(tmp_path / "xla", {"serving_default": compiled}))
    assert [(f.code, f.severity) for f in found] == [("xla-must-compile", WARNING)]


@pytest.mark.parametrize(("target", "skewed"), [("2.10", True), ("2.21.3", False), ("2.30.0-rc1", False)])
def test_10_version_skew_against_the_target(linear, target, skewed):
    found = by_code(static_findings(linear, serving_tf_version=target), "version-skew")
    assert bool(found) is skewed
    if skewed:
        assert found[0].severity == ERROR and target in found[0].message


def test_10_model_from_a_newer_tensorflow_than_installed(linear, tmp_path):
    model = copy_model(linear, tmp_path / "future")
    rewrite_proto(model, lambda p: setattr(serve_meta(p).meta_info_def, "tensorflow_version", "2.99.0"))
    found = by_code(static_findings(model, serving_tf_version=target_version("")), "version-skew")
    assert found and found[0].severity == ERROR and "2.99.0" in found[0].message
    rewrite_proto(model, lambda p: setattr(serve_meta(p).meta_info_def, "tensorflow_version", ""))
    assert [f.severity for f in by_code(static_findings(model), "version-skew")] == [WARNING]
    with pytest.raises(UserError, match="not a TensorFlow version"):
        target_version("latest")


def _vocab_model(vocab):
    def build(v1):
        words = v1.placeholder(np.str_, [None], name="words")
        init = v1.lookup.TextFileInitializer(str(vocab), np.str_, -2, np.int64, -1)
        ids = v1.lookup.StaticHashTable(init, -1).lookup(words)
        return {"serving_default": v1.saved_model.predict_signature_def({"words": words}, {"ids": ids})}

    return build


def test_11_initializer_reading_outside_assets(tmp_path, tf):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("a\nb\nc\n")
    leaky = tf1_builder(tmp_path / "leaky", _vocab_model(vocab), assets=False, main_op=True)
    found = by_code(static_findings(leaky), "file-outside-assets")
    assert len(found) == 1 and found[0].severity == ERROR and str(vocab) in found[0].message
    # The same graph with the vocabulary registered as an asset is self-contained.
    packaged = tf1_builder(tmp_path / "packaged", _vocab_model(vocab), assets=True, main_op=True)
    assert (packaged / "assets" / "vocab.txt").is_file()
    assert static_findings(packaged) == []


def test_14_contract_differences_are_errors(linear, tmp_path):
    good = parse_contract(
        '{"serving_default": {"inputs": {"x": {"dtype": "DT_FLOAT", "shape": [-1, 4]}},'
        ' "outputs": {"y": {"dtype": "float32", "shape": [null, 1]}}}}',
        "c.json",
    )
    assert static_findings(linear, good) == []
    drifted = parse_contract(
        """
serving_default:
  method_name: tensorflow/serving/classify
  inputs:
    x: {dtype: float64, shape: [-1, 4]}
    age: {dtype: float32}
  outputs:
    y: {dtype: float32, shape: [-1, 2]}
scores:
  inputs: {}
  outputs: {}
""",
        "c.yaml",
    )
    found = static_findings(linear, drifted)
    assert {(f.code, f.signature, f.tensor) for f in found} == {
        ("contract-method", "serving_default", ""),
        ("contract-dtype", "serving_default", "x"),
        ("contract-missing", "serving_default", "age"),
        ("contract-shape", "serving_default", "y"),
        ("contract-missing", "scores", ""),
    }
    assert {f.severity for f in found} == {ERROR}
    extra = parse_contract("serving_default: {inputs: {}, outputs: {y: {dtype: float32}}}", "c.yaml")
    assert [(f.code, f.tensor) for f in static_findings(linear, extra)] == [("contract-extra", "x")]


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[1, 2", "not valid YAML"),
        ("- a\n- b", "mapping of signature names"),
        ("serving_default: {inputs: {}}", "needs 'inputs' and 'outputs'"),
        ("serving_default: {inputs: {x: {shape: [1]}}, outputs: {}}", "needs a dtype"),
        ("serving_default: {inputs: {x: {dtype: floaty}}, outputs: {}}", "unknown dtype 'floaty'"),
        ("serving_default: {inputs: {x: {dtype: float32, shape: 3}}, outputs: {}}", "shape must be a list"),
    ],
)
def test_14_bad_contract_files_name_the_problem(text, complaint):
    with pytest.raises(UserError, match="contract.yaml") as err:
        parse_contract(text, "contract.yaml")
    assert complaint in str(err.value)


def test_14_report_json_is_accepted_as_a_contract(linear):
    from kfp_tfserving.components.check_signatures.static_checks import ModelView
    from kfp_tfserving.components.common.saved_model.proto import read_saved_model_proto

    view = ModelView(linear, read_saved_model_proto(linear))
    import json

    as_report = json.dumps(
        {"passed": True, "signatures": {n: s.as_dict() for n, s in view.signatures.items()}}
    )
    assert static_findings(linear, parse_contract(as_report, "report.json")) == []


def test_a_model_the_static_checks_reject_costs_no_tensorflow_import(tmp_path):
    """The session reads the protos and the installed TensorFlow's version without importing TensorFlow:
    a model without serving_default is rejected before the runtime (and TensorFlow) is needed."""
    import json
    import subprocess
    import sys

    from kfp_tfserving.components.common.saved_model.tf_protos import saved_model_pb2

    proto = saved_model_pb2().SavedModel()
    proto.meta_graphs.add().meta_info_def.tags.append("serve")
    (tmp_path / "saved_model.pb").write_bytes(proto.SerializeToString())
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from kfp_tfserving.components.check_signatures.check_session import CheckRequest, CheckSession\n"
        "model = Path(sys.argv[1])\n"
        "report = CheckSession(CheckRequest(model, model)).run().report\n"
        "print(json.dumps({'codes': [f.code for f in report.findings], 'tf': 'tensorflow' in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "no-serving-default" in result["codes"] and result["tf"] is False


@pytest.mark.parametrize(
    "spelled",
    ["float32", "float", "double", "half", "int64", "string", "bool", "bfloat16", "DT_FLOAT", "dt_int64",
     "DT_STRING_REF", "int", "str", "f4", "nonsense", "DT_INVALID", "DT_NOPE"],
)  # fmt: skip
def test_contract_dtypes_are_read_as_tensorflow_reads_them_without_importing_it(tf, spelled):
    from tensorflow.core.framework import types_pb2

    from kfp_tfserving.components.check_signatures.contract import _dtype_name

    try:
        upper = spelled.upper()
        expected = tf.dtypes.as_dtype(types_pb2.DataType.Value(upper) if upper.startswith("DT_") else spelled)
        expected = expected.name
    except (TypeError, ValueError):
        expected = None
    if expected is None:
        with pytest.raises(UserError, match="unknown dtype"):
            _dtype_name(spelled, "contract.yaml")
    else:
        assert _dtype_name(spelled, "contract.yaml") == expected
