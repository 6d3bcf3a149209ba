"""The load test on tiny models: the batch scheduler in front of the model, through the serving oracle."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from kfp_tfserving.components.check_signatures import batching, batching_load
from kfp_tfserving.components.check_signatures.batching_params import BATCHING_PARAMS_FILE, BatchingConfig
from kfp_tfserving.components.common.serving_oracle import ServedModel, ServingRunError

tf = pytest.importorskip("tensorflow")

CONFIG = BatchingConfig(
    max_batch_size=8,
    batch_timeout_micros=20_000,
    num_batch_threads=1,
    max_enqueued_batches=100,
    allowed_batch_sizes=[1, 2, 4, 8],
)


def _save(tmp_path, fn, spec, name="m"):
    module = tf.Module()
    module.w = tf.Variable(tf.ones([4, 3]))
    module.serve = tf.function(lambda x: fn(module, x), input_signature=[spec])
    tf.saved_model.save(module, str(tmp_path / name), signatures={"serving_default": module.serve})
    return tmp_path / name


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return _save(
        tmp_path_factory.mktemp("tiny"),
        lambda m, x: {"y": tf.matmul(x, m.w)},
        tf.TensorSpec([None, 4], tf.float32, "x"),
    )


@pytest.fixture(scope="module")
def batch_reporter(tmp_path_factory):
    """Answers each example with the size of the batch it was computed in."""

    def fn(m, x):
        size = tf.cast(tf.shape(x)[0], tf.float32)
        return {"seen": tf.reduce_sum(tf.matmul(x, m.w), axis=1) * 0 + size}

    return _save(tmp_path_factory.mktemp("reporter"), fn, tf.TensorSpec([None, 4], tf.float32, "x"))


def test_the_batch_function_goes_into_the_loaded_session_and_answers_like_the_model(tiny):
    x = {"x": np.arange(4, dtype=np.float32).reshape(1, 4)}
    with ServedModel(tiny) as served:
        node = batching_load.batch_function_node(served.meta, CONFIG, "serving_default")
        assert node.op == "BatchFunction" and list(node.attr["allowed_batch_sizes"].list.i) == [1, 2, 4, 8]
        assert node.attr["max_batch_size"].i == 8 and node.attr["batch_timeout_micros"].i == 20_000
        assert len(node.attr["Tin"].list.type) == 1 and len(node.attr["Tcaptured"].list.type) >= 1
        assert not any(n.op == "BatchFunction" for n in served.meta.graph_def.node)  # meta left as loaded
        batched = batching_load.batched_predictor(served, CONFIG, "serving_default")
        again = batching_load.batched_predictor(served, CONFIG, "serving_default")  # a second node: no clash
        np.testing.assert_array_equal(batched(x)["y"], served.predict(x)["y"])
        x2 = {"x": 2 * x["x"]}
        np.testing.assert_array_equal(again(x2)["y"], served.predict(x2)["y"])
        with pytest.raises(ServingRunError, match="inputs"):
            batched({"z": x["x"]})


def test_concurrent_single_example_requests_are_merged_by_the_scheduler(batch_reporter):
    seen: list[float] = []
    lock = threading.Lock()
    with ServedModel(batch_reporter) as served:
        batched = batching_load.batched_predictor(served, CONFIG, "serving_default")

        def request():
            out = batched({"x": np.ones((1, 4), np.float32)})["seen"]
            with lock:
                seen.extend(out.tolist())

        figures = batching_load.replay(request, clients=8, seconds=1.0)
        assert served.predict({"x": np.ones((3, 4), np.float32)})["seen"].tolist() == [3.0] * 3  # unbatched
    assert figures["requests"] == len(seen) > 0
    assert max(seen) > 1  # requests from different clients were computed as one batch ...
    assert set(seen) <= {1.0, 2.0, 4.0, 8.0}  # ... padded to an allowed size
    assert figures["p99_ms"] >= figures["p50_ms"] > 0


def test_compare_alternates_both_sides_and_reports_the_ratio(tiny):
    with ServedModel(tiny) as alone:
        x = {"x": np.ones((1, 4), np.float32)}
        out = batching_load.compare(
            {"unbatched": lambda: alone.predict(x), "batched": lambda: alone.predict(x)}, 2, 0.6, pairs=2
        )
    assert len(out["ratios"]) == 2 and out["unbatched"]["requests"] > 0 and out["batched"]["requests"] > 0
    assert out["pays"] is (min(out["ratios"]) > 1.1)  # two pairs: the worse one must win by 10 %


def test_the_load_verdict_needs_four_pairs_of_five_to_win():
    assert batching_load.lower_quartile([0.5, 1.2, 1.3, 1.4, 9.0]) == 1.2  # one bad pair: still pays
    assert batching_load.lower_quartile([0.5, 0.9, 1.3, 1.4, 9.0]) == 0.9  # two: does not


def test_a_tf1_graph_without_a_serving_function_is_not_load_testable(tmp_path):
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        y = tf.identity(x * 2.0, name="y")
        with tf.compat.v1.Session(graph=g) as session:
            builder = tf.compat.v1.saved_model.Builder(str(tmp_path / "tf1"))
            sig = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y})
            builder.add_meta_graph_and_variables(session, ["serve"], {"serving_default": sig})
            builder.save()
    with ServedModel(tmp_path / "tf1") as served:
        with pytest.raises(batching_load.NotLoadTestable, match="function call"):
            batching_load.batch_function_node(served.meta, CONFIG, "serving_default")
        out = batching_load.prove(served, CONFIG, "serving_default", 1.0)
    assert out["skipped"].startswith("not load-tested")


def test_measure_and_write_writes_the_file_only_when_the_measurement_says_so(tmp_path, tiny):
    import shutil

    staged = tmp_path / "m"
    shutil.copytree(tiny, staged)
    result = batching.measure_and_write(staged, budget_seconds=4.0, serving_cpus=1)
    assert [p["batch"] for p in result["points"]][:2] == [1, 2]
    assert "decision" in result and result["serving_cpus"] == 1
    assert (staged / BATCHING_PARAMS_FILE).exists() == result["publish"] == ("file" in result)
    if "parameters" in result:  # the sweep chose a size: the load test ran (or says why not)
        assert "verdict" in result["load_test"] or "skipped" in result["load_test"]
    again = tmp_path / "n"
    shutil.copytree(tiny, again)
    assert "file" not in batching.measure_and_write(again, budget_seconds=2.0, serving_cpus=1, write=False)
    assert not (again / BATCHING_PARAMS_FILE).exists()
