"""The check step's fresh-process checks (9 registry, 12, 13, 15), the step's outputs, and good models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from check_builders import (
    codes,
    copy_model,
    linear_module,
    rewrite_proto,
    save_module,
    serve_meta,
    tf1_builder,
    tf1_classifier,
    tf1_predict,
)

from kfp_tfserving.components.check_signatures.check_report import WarmupFacts
from kfp_tfserving.components.check_signatures.check_session import Batching, CheckRequest, CheckSession
from kfp_tfserving.components.check_signatures.check_step import check_model, check_step
from kfp_tfserving.components.check_signatures.findings import ERROR
from kfp_tfserving.components.common.errors import UserError
from kfp_tfserving.components.common.saved_model.warmup import MAX_RECORDS, WARMUP_FILE


@pytest.fixture(scope="session")
def good_model(tmp_path_factory, tf):
    """A good TF2 model every runtime test may copy and break."""
    return linear_module(tmp_path_factory.mktemp("good") / "linear")


class Metrics:
    def __init__(self):
        self.logged = {}

    def log_metric(self, name, value):
        self.logged[name] = value


def read_warmup_logs(path):
    """The warmup file's records, parsed with tensorflow-serving-api independently of the checker."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    logs = []
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record)
        logs.append(log)
    return logs


def keras3_export(path):
    import keras

    from kfp_tfserving.components.common.formats.keras_export import export_keras

    age = keras.Input((3,), name="age")
    city = keras.Input((2,), name="city")
    hidden = keras.layers.Dense(4, activation="relu")(keras.layers.Concatenate()([age, city]))
    model = keras.Model([age, city], [keras.layers.Dense(1, name="score")(hidden)])
    export_keras(model, path)
    return path


def tf2_examples(path, tf):
    """A TFX-style export: serving_default parses serialized tf.Example inside its function."""
    w = tf.Variable(tf.ones([3, 1]))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(examples):
        spec = {"a": tf.io.FixedLenFeature([2], tf.float32), "b": tf.io.FixedLenFeature([1], tf.int64)}
        parsed = tf.io.parse_example(examples, spec)
        return {"score": tf.matmul(tf.concat([parsed["a"], tf.cast(parsed["b"], tf.float32)], 1), w)}

    return save_module(path, {"serving_default": serve}, w=w)


@pytest.mark.parametrize("kind", ["keras3", "tf_module", "tf1_builder", "tf1_estimator_like", "tf2_examples"])
def test_models_tf_serving_serves_have_no_error(kind, tmp_path, good_model, tf):
    model = {
        "keras3": lambda: keras3_export(tmp_path / "k"),
        "tf_module": lambda: good_model,
        "tf1_builder": lambda: tf1_builder(tmp_path / "tf1", tf1_predict),
        "tf1_estimator_like": lambda: tf1_builder(tmp_path / "est", tf1_classifier),
        "tf2_examples": lambda: tf2_examples(tmp_path / "tfx", tf),
    }[kind]()
    report = check_model(model)
    assert [f for f in report.findings if f.severity == ERROR] == []
    assert report.passed
    assert report.runtime.load_seconds > 0 and report.runtime.median_latency_ms > 0
    assert report.runtime.warmup == WarmupFacts(file=WARMUP_FILE, records=2, generated=True)
    assert not (model / "assets.extra").exists()  # the CLI-style check never writes into the model


def test_9_op_unknown_to_a_clean_tensorflow_is_an_error(good_model, tmp_path):
    def rename(proto, op):
        for fn in serve_meta(proto).graph_def.library.function:
            for node in fn.node_def:
                if node.op == "MatMul":
                    node.op = op

    custom = rewrite_proto(copy_model(good_model, tmp_path / "custom"), lambda p: rename(p, "KfpTestOnlyOp"))
    report = check_model(custom)
    assert [(f.code, f.severity) for f in report.findings] == [("unregistered-op", ERROR)]
    assert "KfpTestOnlyOp" in report.findings[0].message
    assert report.runtime.load_seconds is None  # the clean process refused before loading

    # TF Text ops are linked into the model server: not an error, but not load-testable here.
    text = rewrite_proto(copy_model(good_model, tmp_path / "text"), lambda p: rename(p, "CaseFoldUTF8"))
    report = check_model(text)
    assert report.passed and [(f.code, f.severity) for f in report.findings] == [("load-and-run", "warning")]


def test_12_model_that_fails_on_requests(tmp_path, tf):
    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def serve(x):
        with tf.control_dependencies([tf.debugging.assert_less(x, -100.0, message="x too big")]):
            return {"y": x * 2.0}

    report = check_model(save_module(tmp_path / "assert", {"serving_default": serve}))
    found = [f for f in report.findings if f.code == "load-and-run"]
    assert found and found[0].severity == ERROR and "running on generated inputs failed" in found[0].message


def test_12_model_whose_weights_are_damaged(good_model, tmp_path):
    broken = copy_model(good_model, tmp_path / "broken")
    for data in (broken / "variables").glob("variables.data-*"):
        data.write_bytes(b"\0" * 8)
    report = check_model(broken)
    found = [f for f in report.findings if f.code == "restore-failed"]
    assert found and found[0].severity == ERROR and "restoring the variables fails" in found[0].message


def test_13_outputs_without_a_shared_batch_and_binary_strings(tmp_path, tf):
    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def serve(x):
        blob = tf.map_fn(tf.io.serialize_tensor, x, fn_output_signature=tf.string)
        return {"y": x * 2.0, "labels": tf.constant(["a", "b", "c"]), "blob": blob, "blob_bytes": blob}

    report = check_model(save_module(tmp_path / "rest", {"serving_default": serve}))
    assert report.passed
    assert {(f.code, f.tensor) for f in report.findings} == {
        ("fixed-batch", "labels"),  # check 6 sees it in the signature
        ("rest-row-format", ""),  # check 13 sees it in the answer
        ("rest-binary-output", "blob"),
    }


def test_15_step_writes_the_checked_model_with_warmup_report_metrics_and_metadata(good_model, tmp_path):
    checked, report_md, metrics, metadata = tmp_path / "checked", tmp_path / "report.md", Metrics(), {}
    check_step(good_model, {"source": "s"}, checked, metadata, report_md, metrics)
    logs = read_warmup_logs(checked / WARMUP_FILE)
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log", "predict_log"]
    import tensorflow as tf

    shapes = sorted(tf.make_ndarray(log.predict_log.request.inputs["x"]).shape for log in logs)
    assert shapes == [(1, 4), (2, 4)]
    assert {log.predict_log.request.model_spec.signature_name for log in logs} == {"serving_default"}
    assert not (good_model / "assets.extra").exists()
    assert (checked / "saved_model.pb").read_bytes() == (good_model / "saved_model.pb").read_bytes()
    assert metadata["source"] == "s" and metadata["check_report"]["passed"] is True
    assert metadata["check_report"]["runtime"]["warmup"]["records"] == 2
    assert metrics.logged["errors"] == 0 and metrics.logged["warmup_records"] == 2
    assert metrics.logged["load_seconds"] > 0 and metrics.logged["median_latency_ms"] > 0
    text = report_md.read_text()
    assert "`serving_default`" in text and "x: float32[-1,4]" in text and WARMUP_FILE in text


def test_step_refuses_a_failing_model_but_still_reports(good_model, tmp_path):
    model = copy_model(good_model, tmp_path / "future")
    rewrite_proto(model, lambda p: setattr(serve_meta(p).meta_info_def, "tensorflow_version", "2.99.0"))
    report_md, metrics, metadata = tmp_path / "r.md", Metrics(), {}
    with pytest.raises(UserError, match=r"TF Serving would reject the model: \[version-skew\]"):
        check_step(model, {}, tmp_path / "checked", metadata, report_md, metrics, serving_tf_version="2.21")
    assert metrics.logged["errors"] == 1 and "version-skew" in report_md.read_text()
    assert "check_report" not in metadata


def _write_records(path, records):
    import tensorflow as tf

    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)


def _predict_log(name, value):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest()
    request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    ).SerializeToString()


@pytest.mark.parametrize(
    ("records", "complaint"),
    [
        (lambda: [_predict_log("features", np.ones((1, 4), np.float32))], "sends inputs ['features']"),
        (lambda: [_predict_log("x", np.ones((1, 3), np.float32))], "record 0 fails"),
        (lambda: [b"not a prediction log \xff"], "not a tensorflow.serving.PredictionLog"),
        (lambda: [_predict_log("x", np.ones((1, 4), np.float32))] * (MAX_RECORDS + 1), "more than 1000"),
    ],
    ids=["wrong-input", "wrong-shape", "garbage", "too-many"],
)
def test_15_an_existing_bad_warmup_file_is_an_error_and_kept(good_model, tmp_path, records, complaint):
    model = copy_model(good_model, tmp_path / "m")
    _write_records(model / WARMUP_FILE, records())
    before = (model / WARMUP_FILE).read_bytes()
    report = check_model(model)
    found = [f for f in report.findings if f.code == "warmup"]
    assert found and found[0].severity == ERROR and complaint in found[0].message
    assert (model / WARMUP_FILE).read_bytes() == before


def test_15_an_existing_classify_warmup_file_is_replayed(tmp_path, tf):
    from tensorflow.core.example import example_pb2
    from tensorflow_serving.apis import classification_pb2, prediction_log_pb2

    model = tf1_builder(tmp_path / "est", tf1_classifier)
    example = example_pb2.Example()
    example.features.feature["age"].float_list.value.append(31.0)
    example.features.feature["clicks"].int64_list.value.extend([1, 0])
    request = classification_pb2.ClassificationRequest()
    request.model_spec.signature_name = "classification"
    request.input.example_list.examples.append(example)
    log = prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(request=request))
    _write_records(model / WARMUP_FILE, [log.SerializeToString()])
    report = check_model(model)
    assert report.passed and report.runtime.warmup == WarmupFacts(WARMUP_FILE, records=1, generated=False)

    # The same request without a feature the graph needs fails, as it would on the server.
    del example.features.feature["clicks"]
    request.input.example_list.examples[0].CopyFrom(example)
    log = prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(request=request))
    _write_records(model / WARMUP_FILE, [log.SerializeToString()])
    assert "warmup" in codes(check_model(model).findings)


def test_12_string_inputs_the_check_cannot_generate_are_a_warning_and_warmup_decides(tmp_path, tf):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="tensors")])
    def serve(tensors):
        parse = lambda b: tf.io.parse_tensor(b, tf.float32)  # noqa: E731
        return {"y": tf.map_fn(parse, tensors, fn_output_signature=tf.TensorSpec([2], tf.float32))}

    model = save_module(tmp_path / "opaque", {"serving_default": serve})
    report = check_model(model)
    assert report.passed and [(f.code, f.severity) for f in report.findings] == [("load-and-run", "warning")]
    assert "ParseTensor" in report.findings[0].message and report.runtime.warmup is None

    # With real requests in a warmup file the check replays them; broken ones are an error.
    good = tf.io.serialize_tensor(tf.constant([1.0, 2.0])).numpy()
    _write_records(model / WARMUP_FILE, [_predict_log("tensors", np.array([good], dtype=object))])
    report = check_model(model)
    assert report.runtime.warmup == WarmupFacts(WARMUP_FILE, records=1, generated=False)
    assert "warmup" not in codes(report.findings)
    _write_records(model / WARMUP_FILE, [_predict_log("tensors", np.array([b"junk"], dtype=object))])
    assert [f.severity for f in check_model(model).findings if f.code == "warmup"] == [ERROR]


def test_one_oracle_load_serves_the_runtime_checks_and_the_sweep(tmp_path, good_model, monkeypatch):
    from kfp_tfserving.components.check_signatures.batching_params import BATCHING_PARAMS_FILE
    from kfp_tfserving.components.common import serving_oracle
    from kfp_tfserving.components.common.saved_model.fingerprint import model_fingerprint

    loads = []
    original = serving_oracle.ServedModel.__init__

    def counting(self, model_dir, *args, **kwargs):
        loads.append(model_dir)
        original(self, model_dir, *args, **kwargs)

    monkeypatch.setattr(serving_oracle.ServedModel, "__init__", counting)
    staged = copy_model(good_model, tmp_path / "m")
    outcome = CheckSession(CheckRequest(staged, staged, batching=Batching(2.0, serving_cpus=1))).run()
    report = outcome.report
    batch = report.runtime.batching
    # The sweep and the load test ran on the runtime checks' session: the model is loaded once.
    assert report.passed and loads == [staged]
    assert [p["batch"] for p in batch["points"]][:2] == [1, 2]
    assert (staged / BATCHING_PARAMS_FILE).is_file() == batch[
        "publish"
    ] and report.runtime.warmup.records >= 1
    # hashed in a thread beside the load: the same digest as computed on its own
    assert report.runtime.model_fingerprint == model_fingerprint(staged).digest
    # where the time went is the step log's business, not the report's (the model's metadata)
    assert set(outcome.phase_seconds) == {"static_checks", "runtime_checks", "batching_sweep"}
    assert "phase_seconds" not in json.dumps(report.as_dict()) and "timings" not in json.dumps(
        report.as_dict()
    )


def test_a_model_that_fails_its_runtime_checks_gets_no_sweep_and_no_fingerprint(tmp_path, good_model):
    staged = copy_model(good_model, tmp_path / "m")
    data = next((staged / "variables").glob("variables.data-*"))
    data.write_bytes(b"\0" * 8)  # truncated weights: the restore fails as TF Serving's would
    report = CheckSession(CheckRequest(staged, staged, batching=Batching(2.0, serving_cpus=1))).run().report
    assert not report.passed
    assert report.runtime.batching is None and report.runtime.model_fingerprint == ""
