"""Inputs that need no --sample: tf.Examples that follow the graph's parsing spec exactly, and unknown
dimensions tried on a ladder of lengths until the model accepts one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import served_predict

from kfp_tfserving.components.common.errors import UserError
from kfp_tfserving.components.common.saved_model.proto import read_signatures
from kfp_tfserving.components.export_savedmodel.exporter import export_model
from kfp_tfserving.components.load_model.loader import load_source


def _export(source: Path, tmp_path: Path, **options):
    fetched, model_meta, export_meta = tmp_path / "fetched", {}, {}
    load_source(str(source), fetched, model_meta)
    export_model(fetched, model_meta, tmp_path / "exported", export_meta, **options)
    return tmp_path / "exported", export_meta


def _example(tf, city: bytes | None, age: float, hours: list[float] | None) -> bytes:
    feature = {"age": tf.train.Feature(float_list=tf.train.FloatList(value=[age]))}
    if city is not None:
        feature["city"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[city]))
    if hours is not None:
        feature["hours"] = tf.train.Feature(float_list=tf.train.FloatList(value=hours))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@pytest.fixture(scope="module")
def example_parsing_model(tmp_path_factory, tf) -> Path:
    """A TF1 SavedModel as Estimators wrote them: serialized tf.Examples in, a VarLen categorical feature
    densified to [batch, 1] and hashed, FixedLen numeric features (one with a default) beside it."""
    v1 = tf.compat.v1
    path = tmp_path_factory.mktemp("example_parsing") / "model"
    graph = tf.Graph()
    with graph.as_default():
        serialized = v1.placeholder(tf.string, [None], name="input_example_tensor")
        parsed = v1.io.parse_example(
            serialized,
            {
                "city": v1.io.VarLenFeature(tf.string),
                "age": v1.io.FixedLenFeature([1], tf.float32),
                "hours": v1.io.FixedLenFeature([2], tf.float32, default_value=[8.0, 8.0]),
            },
        )
        city = parsed["city"]
        batch = tf.shape(serialized, out_type=tf.int64)[0]
        # The densification Estimator feature columns (and many hand-written input_fns) did: one id per row.
        dense_city = tf.sparse.to_dense(
            tf.SparseTensor(city.indices, city.values, tf.stack([batch, 1])), default_value=""
        )
        city_id = tf.cast(tf.strings.to_hash_bucket_fast(dense_city, 7), tf.float32)
        features = tf.concat([parsed["age"], parsed["hours"], city_id], axis=1)
        weights = tf.constant(np.arange(4 * 2, dtype=np.float32).reshape(4, 2) / 10.0)
        scores = tf.identity(tf.matmul(features, weights), name="scores")
        with v1.Session(graph=graph) as sess:
            builder = v1.saved_model.Builder(str(path))
            signature = v1.saved_model.predict_signature_def({"examples": serialized}, {"scores": scores})
            builder.add_meta_graph_and_variables(
                sess, ["serve"], signature_def_map={"serving_default": signature}
            )
            builder.save()
    return path


def test_examples_follow_the_parsing_spec_and_need_no_sample(tmp_path, tf, example_parsing_model):
    exported, meta = _export(example_parsing_model, tmp_path)
    assert meta["parity_passed"] is True
    # The version answers real examples as the model's own formula says, a missing defaulted feature too.
    rows = [(b"Paris", 31.0, [40.0, 2.0]), (b"Lima", 52.0, None)]
    examples = np.array([_example(tf, *row) for row in rows], dtype=object)
    got = served_predict(exported, examples=examples)["scores"]
    weights = np.arange(8, dtype=np.float32).reshape(4, 2) / 10.0
    for row, (city, age, hours) in zip(got, rows, strict=True):
        bucket = tf.strings.to_hash_bucket_fast([city], 7).numpy()[0]
        want = np.array([age, *(hours or [8.0, 8.0]), bucket], dtype=np.float32) @ weights
        np.testing.assert_allclose(row, want, rtol=1e-6)


def test_generated_examples_carry_one_value_per_varlen_feature(tf, example_parsing_model):
    from kfp_tfserving.components.common.formats.string_inputs import described_inputs
    from kfp_tfserving.components.common.samples import generate_inputs

    specs = described_inputs(example_parsing_model)
    batch = generate_inputs(specs, batch=3)["examples"]
    parsed = [tf.train.Example.FromString(b).features.feature for b in batch]
    assert [len(f["city"].bytes_list.value) for f in parsed] == [1, 1, 1]
    assert [len(f["hours"].float_list.value) for f in parsed] == [2, 2, 2]
    assert [len(f["age"].float_list.value) for f in parsed] == [1, 1, 1]


def _cropping_model(tmp_path: Path, crop: int) -> Path:
    import keras

    steps = keras.Input((None, 3), name="steps")
    cropped = keras.layers.Cropping1D((crop, crop + 1), name="crop_warmup")(steps)
    pooled = keras.layers.GlobalAveragePooling1D()(cropped)
    model = keras.Model(steps, keras.layers.Dense(2, name="score")(pooled))
    path = tmp_path / f"crop{crop}.keras"
    model.save(path)
    return path


def test_unknown_lengths_climb_a_ladder_until_the_model_accepts_one(tmp_path, tf):
    from kfp_tfserving.components.common.saved_model.warmup import WARMUP_FILE, read_warmup

    exported, meta = _export(_cropping_model(tmp_path, 5000), tmp_path)
    assert meta["parity_passed"] is True
    # The length that worked travels with the version: the check step and TF Serving's warmup run it.
    (request,) = read_warmup(exported / WARMUP_FILE)
    assert request.inputs["steps"].shape == (2, 16384, 3)
    x = np.random.default_rng(0).random((1, 12000, 3), dtype=np.float32)
    sig = read_signatures(exported)["serving_default"]
    assert sig.inputs[0].shape == (None, None, 3)
    import keras

    model = keras.saving.load_model(tmp_path / "crop5000.keras")
    np.testing.assert_allclose(served_predict(exported, steps=x)["score"], np.asarray(model(x)), atol=1e-5)


def test_a_length_floor_past_the_ladder_names_the_lengths_and_the_layer(tmp_path, tf):
    with pytest.raises(UserError) as err:
        _export(_cropping_model(tmp_path, 9000), tmp_path)
    line = err.value.one_line()
    assert "4, 16, 64, 256, 1024, 4096, 16384" in line
    assert "layer 'crop_warmup'" in line and "smaller than the input length" in line
    assert "--sample" in line
    assert not (tmp_path / "exported" / "assets.extra").exists()
