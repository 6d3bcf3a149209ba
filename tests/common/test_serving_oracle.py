"""The serving oracle: models TF2's loader runs but TF Serving cannot are refused, then repaired on export.

Each bad SavedModel is built here the way people really produce it. The oracle loads as
tensorflow_model_server does (TF1 Session over {serve}, saver_def restore, init op, warmup replay).
"""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
from check_builders import copy_model, linear_module, rewrite_proto, serve_meta, tf1_builder, tf1_predict
from conftest import served_predict

from kfp_tfserving.components.check_signatures.check_step import check_model
from kfp_tfserving.components.check_signatures.findings import ERROR
from kfp_tfserving.components.common.saved_model.warmup import WARMUP_FILE, write_warmup
from kfp_tfserving.components.common.serving_oracle import (
    ServingLoadError,
    ServingRunError,
    load_served,
)
from kfp_tfserving.components.export_savedmodel.exporter import export_model

X = np.random.default_rng(3).random((3, 4), dtype=np.float32)


def _keras3_with_batchnorm():
    import keras

    features = keras.Input((4,), name="features")
    hidden = keras.layers.Dense(8)(features)
    hidden = keras.layers.BatchNormalization()(hidden)
    model = keras.Model(features, keras.layers.Dense(3, activation="softmax", name="probs")(hidden))
    # Moving statistics away from their initial values, so a wrong restore would show in the numbers.
    model.compile("sgd", "mse")
    model.fit(X, np.eye(3, dtype=np.float32), epochs=2, verbose=0)
    return model


@pytest.fixture(scope="module")
def keras3_model(tf):
    return _keras3_with_batchnorm()


@pytest.fixture(scope="module")
def saved_directly(keras3_model, tmp_path_factory, tf):
    """`tf.saved_model.save(keras3_model)`: the most common way people turn Keras 3 into a SavedModel."""
    path = tmp_path_factory.mktemp("direct") / "model"
    tf.saved_model.save(keras3_model, str(path))
    return path


@pytest.fixture(scope="module")
def saved_through_module(keras3_model, tmp_path_factory, tf):
    """A tf.Module tracking a Keras 3 model, with a tf.function signature naming its own input."""
    path = tmp_path_factory.mktemp("module") / "model"

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="features")])
    def serve(features):
        return {"probs": keras3_model(features, training=False)}

    module = tf.Module()
    module.model = keras3_model
    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return path


@pytest.mark.parametrize("fixture", ["saved_directly", "saved_through_module"])
def test_tf2_loader_hides_what_the_oracle_sees(request, fixture, keras3_model, tf):
    path = request.getfixturevalue(fixture)
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    (hidden,) = signature(**{next(iter(signature.structured_input_signature[1])): tf.constant(X)}).values()
    np.testing.assert_allclose(hidden.numpy(), keras3_model(X).numpy(), atol=1e-5)  # "works" under TF2
    with load_served(path) as served:
        name = served.signatures["serving_default"].inputs[0].name
        with pytest.raises(ServingRunError, match="Could not find variable"):
            served.predict({name: X})


@pytest.mark.parametrize("fixture", ["saved_directly", "saved_through_module"])
def test_check_refuses_variables_the_saver_does_not_restore(request, fixture):
    report = check_model(request.getfixturevalue(fixture))
    found = [f for f in report.findings if f.code == "variables-not-restored"]
    assert found and found[0].severity == ERROR and not report.passed
    assert "kfp-tfserving run" in found[0].fix
    assert "/" in found[0].tensor  # a variable's own name, e.g. dense/kernel


@pytest.mark.parametrize("fixture", ["saved_directly", "saved_through_module"])
def test_export_repairs_it_and_proves_parity_through_the_oracle(request, fixture, keras3_model, tmp_path):
    source = request.getfixturevalue(fixture)
    metadata: dict = {}
    export_model(source, {}, tmp_path / "out", metadata)
    assert "variables the saver_def never restores" in metadata["repaired"]
    assert metadata["parity_passed"]
    (name,) = metadata["signatures"]["serving_default"]["inputs"]
    (out,) = served_predict(tmp_path / "out", **{name: X}).values()
    np.testing.assert_allclose(out, keras3_model(X).numpy(), atol=1e-5)
    assert check_model(tmp_path / "out").passed


def test_a_servable_tf2_saved_model_passes_through_untouched(tmp_path):
    source = linear_module(tmp_path / "src")
    metadata: dict = {}
    export_model(source, {}, tmp_path / "out", metadata)
    assert metadata["repaired"] == ""
    assert (tmp_path / "out" / "saved_model.pb").read_bytes() == (source / "saved_model.pb").read_bytes()


def test_signature_naming_a_tensor_the_graph_lacks(tmp_path):
    def edit(proto):
        serve_meta(proto).signature_def["serving_default"].outputs["y"].name = "no_such_op:0"

    broken = rewrite_proto(copy_model(linear_module(tmp_path / "src"), tmp_path / "bad"), edit)
    report = check_model(broken)
    found = [f for f in report.findings if f.code == "signature-tensor-missing"]
    assert found and found[0].tensor == "y" and "no_such_op:0" in found[0].message
    assert not report.passed
    with load_served(broken) as served, pytest.raises(ServingRunError, match="no_such_op"):
        served.predict({"x": X})


def test_requests_answer_and_refuse_as_session_run_on_the_signature_names_does(tmp_path):
    """predict is TF_SessionRun on the signature's names: its answers are the graph's, its refusals the C++
    session's own (Session::Run checks no placeholder shape: a wrong shape fails in the op that meets it)."""
    from kfp_tfserving.components.common import tf_c_api

    features = np.random.default_rng(5).random((3, 3), dtype=np.float32)
    with load_served(tf1_builder(tmp_path / "tf1", tf1_predict)) as served:
        direct = served.model.runner([served.model.output("features:0")], [served.model.output("score:0")])
        np.testing.assert_allclose(direct.run([features])[0], features.sum(axis=1, keepdims=True), rtol=1e-6)
        for _ in range(2):  # the second request reuses the cached plan
            np.testing.assert_array_equal(
                served.predict({"features": features})["score"], direct.run([features])[0]
            )
        as_lists = served.predict({"features": features.astype(np.float64).tolist()})["score"]
        np.testing.assert_allclose(as_lists, direct.run([features])[0], rtol=1e-6)
        for wrong in (X, features[0], features[None]):  # (3, 4), rank 1, rank 3 against (None, 3)
            with pytest.raises(tf_c_api.CApiError) as refused:
                direct.run([wrong])
            with pytest.raises(ServingRunError) as caught:
                served.predict({"features": wrong})
            assert refused.value.message.splitlines()[0] in caught.value.what
        with pytest.raises(tf_c_api.CApiError, match="float"):  # a dtype the graph does not take
            direct.run([features.astype(np.float64)])
        np.testing.assert_array_equal(
            served.predict({"features": features})["score"], direct.run([features])[0]
        )


def test_concurrent_first_requests_build_the_signature_plan_once(tmp_path, monkeypatch):
    """16 threads sending a signature's first request at once: one request plan (and one executor build in
    the session), every thread answered as a lone request is."""
    import threading

    from kfp_tfserving.components.common import serving_oracle

    built = []
    original = serving_oracle._RequestPlan.__init__

    def counting(self, *args, **kwargs):
        built.append(threading.get_ident())
        time.sleep(0.05)  # widen the window in which unlocked builders would overlap
        original(self, *args, **kwargs)

    monkeypatch.setattr(serving_oracle._RequestPlan, "__init__", counting)
    features = np.random.default_rng(7).random((16, 2, 3), dtype=np.float32)
    with load_served(tf1_builder(tmp_path / "tf1", tf1_predict)) as served:
        start, answers = threading.Barrier(16), [None] * 16

        def request(k: int) -> None:
            start.wait()
            answers[k] = served.predict({"features": features[k]})["score"]

        threads = [threading.Thread(target=request, args=(k,)) for k in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(built) == 1
        for k in range(16):
            np.testing.assert_array_equal(answers[k], served.predict({"features": features[k]})["score"])
            np.testing.assert_allclose(answers[k], features[k].sum(axis=1, keepdims=True), rtol=1e-6)


def test_failing_requests_write_nothing_to_stderr_at_the_quiet_log_level(tmp_path, tf, capfd):
    """With TF's C++ logging at FATAL only (the default here) requests run without the fd-2 guard."""

    def unchecked_shapes(v1):
        x = v1.placeholder(np.float32, [None, None], name="x")
        image = v1.placeholder(tf.string, [], name="image")
        decoded = tf.io.decode_image(image, channels=3, expand_animations=False)
        return {
            "serving_default": v1.saved_model.predict_signature_def(
                {"x": x}, {"y": v1.identity(v1.matmul(x, v1.ones((4, 2))), name="y")}
            ),
            "image": v1.saved_model.predict_signature_def({"image": image}, {"pixels": decoded}),
        }

    path = tf1_builder(tmp_path / "tf1", unchecked_shapes, assets=False)
    capfd.readouterr()
    with load_served(path) as served:
        assert served.predict({"x": np.ones((2, 4), np.float32)})["y"].shape == (2, 2)
        with pytest.raises(ServingRunError, match="Matrix size-incompatible"):
            served.predict({"x": np.ones((2, 3), np.float32)})
        with pytest.raises(ServingRunError, match="Unknown image file format"):
            served.predict({"image": np.array(b"not an image", dtype=object)}, "image")
    assert capfd.readouterr().err == ""


def test_init_op_that_is_missing_from_the_graph(tmp_path):
    def edit(proto):
        serve_meta(proto).signature_def["__saved_model_init_op"].outputs[
            "__saved_model_init_op"
        ].name = "vanished_init"

    broken = rewrite_proto(copy_model(linear_module(tmp_path / "src"), tmp_path / "bad"), edit)
    report = check_model(broken)
    assert "init-op-missing" in {f.code for f in report.findings} and not report.passed
    with pytest.raises(ServingLoadError) as caught:
        load_served(broken).__enter__()
    assert caught.value.stage == "init"


def test_init_op_that_fails(tmp_path, tf):
    failing: list[str] = []

    def build(v1):
        signatures = tf1_predict(v1)
        check = v1.debugging.assert_equal(v1.random.uniform([]), -1.0, name="always_fails")
        failing.append(check.name)
        return signatures

    def with_failing_main_op(proto):
        serve_meta(proto).collection_def["saved_model_main_op"].node_list.value.append(failing[0])

    path = rewrite_proto(tf1_builder(tmp_path / "tf1", build), with_failing_main_op)
    report = check_model(path)
    found = [f for f in report.findings if f.code == "init-op-failed"]
    assert found and "running the init op fails" in found[0].message and not report.passed


def test_warmup_record_with_a_wrong_input_name_fails_the_load(tmp_path):
    model = copy_model(linear_module(tmp_path / "src"), tmp_path / "model")
    write_warmup(model / WARMUP_FILE, "serving_default", [{"not_x": X}])
    with pytest.raises(ServingLoadError, match="record 0 fails") as caught:
        load_served(model).__enter__()
    assert caught.value.stage == "warmup"
    report = check_model(model)
    found = [f for f in report.findings if f.code == "warmup"]
    assert found and "not_x" in found[0].message and not report.passed


def test_classify_and_regress_go_through_serialized_examples(tmp_path, tf):
    from check_builders import tf1_classifier
    from tensorflow.core.example import example_pb2

    path = tf1_builder(tmp_path / "cls", tf1_classifier)
    example = example_pb2.Example()
    example.features.feature["age"].float_list.value.append(1.0)
    example.features.feature["clicks"].int64_list.value.extend([1, 2])
    serialized = np.array([example.SerializeToString()] * 2, dtype=object)
    with load_served(path) as served:
        answer = served.classify(serialized, "classification")
        assert answer["scores"].shape == (2, 2) and answer["classes"].tolist()[0] == [b"no", b"yes"]
        with pytest.raises(ServingRunError, match="needs a signature with method tensorflow/serving/regress"):
            served.regress(serialized, "classification")


def test_the_standin_server_answers_with_tf_serving_semantics(saved_through_module, tmp_path):
    import requests
    from tf_serving_standin import StandInTFServing

    base = tmp_path / "serving" / "m"
    shutil.copytree(saved_through_module, base / "1")
    with StandInTFServing("m", base) as server:
        _wait_for(lambda: server.loaded)
        answer = requests.post(f"{server.url}/v1/models/m:predict", json={"inputs": X.tolist()}, timeout=30)
    assert answer.status_code == 400 and "Could not find variable" in answer.json()["error"]


def test_the_standin_server_fails_a_version_whose_warmup_fails(tmp_path):
    import requests
    from tf_serving_standin import StandInTFServing

    base = tmp_path / "serving" / "m"
    model = copy_model(linear_module(tmp_path / "src"), base / "1")
    write_warmup(model / WARMUP_FILE, "serving_default", [{"not_x": X}])
    with StandInTFServing("m", base) as server:
        _wait_for(lambda: server.failed)
        status = requests.get(f"{server.url}/v1/models/m", timeout=30).json()["model_version_status"]
    assert status[0]["state"] == "END" and "record 0 fails" in status[0]["status"]["error_message"]


def _wait_for(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the stand-in server did not settle"
        time.sleep(0.1)
