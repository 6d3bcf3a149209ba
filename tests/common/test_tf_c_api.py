"""The C API binding: every dtype TF Serving carries in and out of TF_SessionRun, strings of every size,
the C API's own error messages, and one session answering several threads at once."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from kfp_tfserving.components.common import tf_c_api

# numpy dtype -> TensorFlow dtype name, for each dtype TF Serving's Predict API carries
NUMERIC = {
    "float32": "float32",
    "float64": "float64",
    "float16": "float16",
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "uint8": "uint8",
    "uint16": "uint16",
    "uint32": "uint32",
    "uint64": "uint64",
    "bool": "bool",
    "complex64": "complex64",
    "complex128": "complex128",
}


@pytest.fixture(scope="module")
def echo_model(tmp_path_factory, tf):
    """A TF1 SavedModel echoing one input of each dtype (`<dtype>` -> `<dtype>_out`), plus a variable."""
    import ml_dtypes

    v1 = tf.compat.v1
    path = tmp_path_factory.mktemp("capi") / "echo"
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as session:
        inputs, outputs = {}, {}
        for name in [*NUMERIC, "bfloat16", "string"]:
            inputs[name] = v1.placeholder(getattr(tf, name), None, name=name)
            outputs[f"{name}_out"] = tf.identity(inputs[name], name=f"{name}_out")
        w = v1.get_variable("w", initializer=np.arange(3, dtype=np.float32))
        outputs["scaled"] = tf.multiply(inputs["float32"], w, name="scaled")
        session.run(v1.global_variables_initializer())
        builder = v1.saved_model.Builder(str(path))
        builder.add_meta_graph_and_variables(
            session,
            ["serve"],
            signature_def_map={"serving_default": v1.saved_model.predict_signature_def(inputs, outputs)},
        )
        builder.save()
    assert ml_dtypes.bfloat16  # the binding converts bfloat16 through TensorFlow's own numpy type
    model = tf_c_api.SavedModelSession(path, ["serve"])
    yield model
    model.close()


def _echo(model, name: str, value: np.ndarray) -> np.ndarray:
    runner = model.runner([model.output(f"{name}:0")], [model.output(f"{name}_out:0")])
    (out,) = runner.run([value])
    return out


@pytest.mark.parametrize("dtype", sorted(NUMERIC))
def test_every_numeric_dtype_goes_in_and_comes_back_unchanged(echo_model, dtype):
    rng = np.random.default_rng(0)
    value = (rng.random((2, 3)) * 100).astype(dtype)
    if dtype.startswith("complex"):
        value = value + 1j * value[::-1]
    out = _echo(echo_model, dtype, value)
    assert out.dtype == np.dtype(dtype) and out.shape == (2, 3)
    np.testing.assert_array_equal(out, value)
    scalar = _echo(echo_model, dtype, np.asarray(value[0, 0]))
    assert scalar.shape == () and scalar == value[0, 0]
    empty = _echo(echo_model, dtype, np.zeros((0, 4), dtype))
    assert empty.shape == (0, 4)


def test_bfloat16(echo_model):
    import ml_dtypes

    value = np.array([[1.5, -2.25], [3.0, 0.0]], dtype=ml_dtypes.bfloat16)
    out = _echo(echo_model, "bfloat16", value)
    assert out.dtype == value.dtype
    np.testing.assert_array_equal(out.astype(np.float32), value.astype(np.float32))


def test_strings_of_every_size_and_kind(echo_model):
    # TF_TString keeps up to 22 bytes inline and larger ones on the heap: both sides of that boundary.
    items = [b"", b"a", b"x" * 22, b"y" * 23, b"z" * 5000, "naïve".encode(), b"\x00bin\xff"]
    out = _echo(echo_model, "string", np.array(items, dtype=object).reshape(7, 1))
    assert out.shape == (7, 1) and out.dtype == object
    assert [bytes(v) for v in out.reshape(-1)] == items
    as_text = _echo(echo_model, "string", np.array(["naïve", "b"]))  # numpy str arrays are UTF-8 encoded
    assert as_text.tolist() == ["naïve".encode(), b"b"]
    assert _echo(echo_model, "string", np.array(b"one", dtype=object)).tolist() == b"one"


def test_errors_are_the_c_api_status_message(echo_model, tmp_path):
    with pytest.raises(tf_c_api.CApiError, match="Could not find SavedModel .pb") as caught:
        tf_c_api.SavedModelSession(tmp_path / "missing", ["serve"])
    assert caught.value.code == 5  # NOT_FOUND
    with pytest.raises(tf_c_api.CApiError, match="meta graph def matching"):
        tf_c_api.SavedModelSession(echo_model.export_dir, ["serve", "gpu"])
    with pytest.raises(tf_c_api.CApiError, match="float"):  # the graph takes float32, not float64
        _echo(echo_model, "float32", np.ones(2, np.float64))
    with pytest.raises(tf_c_api.CApiError, match="not bytes or str"):
        _echo(echo_model, "string", np.array([1, 2], dtype=object))
    with pytest.raises(KeyError):
        echo_model.output("no_such_op:0")
    with pytest.raises(KeyError):
        echo_model.output("float32:1")  # a placeholder has one output


def test_static_shapes_and_dtypes_come_from_the_loaded_graph(echo_model):
    assert echo_model.dtype(echo_model.output("string:0")) == tf_c_api.DT_STRING
    assert echo_model.static_shape(echo_model.output("float32:0")) is None  # shape=None placeholder


def test_variables_restored_by_the_cpp_loader_are_read(echo_model):
    runner = echo_model.runner([echo_model.output("float32:0")], [echo_model.output("scaled:0")])
    (out,) = runner.run([np.ones(3, np.float32)])
    np.testing.assert_array_equal(out, [0.0, 1.0, 2.0])


def test_one_session_answers_several_threads_at_once(echo_model):
    runner = echo_model.runner([echo_model.output("float32:0")], [echo_model.output("scaled:0")])
    failures: list[BaseException] = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for _ in range(200):
                x = rng.random(3, dtype=np.float32)
                (out,) = runner.run([x])
                np.testing.assert_array_equal(out, x * np.arange(3, dtype=np.float32))
        except BaseException as err:  # reported by the main thread
            failures.append(err)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


def test_close_is_idempotent(tmp_path, echo_model):
    model = tf_c_api.SavedModelSession(echo_model.export_dir, ["serve"])
    runner = model.runner([model.output("float32:0")], [model.output("float32_out:0")])
    model.close()
    model.close()
    with pytest.raises(tf_c_api.CApiError, match="closed"):
        runner.run([np.ones(1, np.float32)])


def test_feed_dtypes_map_to_tensorflow_enums_and_others_are_refused():
    import ml_dtypes

    assert tf_c_api.tf_dtype(np.dtype(np.float32)) == 1
    assert tf_c_api.tf_dtype(np.dtype(ml_dtypes.bfloat16)) == tf_c_api.DT_BFLOAT16
    assert tf_c_api.numpy_dtype(tf_c_api.DT_BFLOAT16) == np.dtype(ml_dtypes.bfloat16)
    for text in (np.dtype(object), np.dtype("S3"), np.dtype("U2")):
        assert tf_c_api.tf_dtype(text) == tf_c_api.DT_STRING
    with pytest.raises(tf_c_api.CApiError, match=r"no TensorFlow dtype for numpy datetime64\[s\]"):
        tf_c_api.tf_dtype(np.dtype("datetime64[s]"))
    assert tf_c_api.numpy_dtype(20) is None  # DT_RESOURCE: never converted
