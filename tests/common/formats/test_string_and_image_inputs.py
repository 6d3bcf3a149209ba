"""String inputs (Keras lookups, vocabularies) and encoded-image inputs: export, samples, check, messages."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import published_versions, run_cli, run_cli_json, served_predict
from string_image_models import (
    COLOURS,
    WORDS,
    b64,
    image_bytes_saved_model,
    jpegs,
    keras_lookup_model,
    write_json,
)

import kfp_tfserving.components.common.formats  # noqa: F401  (the oracle imports the formats package)
from kfp_tfserving.components.check_signatures.check_step import check_model
from kfp_tfserving.components.check_signatures.rest_json import encode_columnar, round_trip_findings
from kfp_tfserving.components.common.encoded_images import encoded_images
from kfp_tfserving.components.common.errors import UserError, specific_line
from kfp_tfserving.components.common.formats.base import TensorSpecInfo
from kfp_tfserving.components.common.formats.keras_export import (
    export_keras,
    keras_input_specs,
    keras_reference,
)
from kfp_tfserving.components.common.formats.string_inputs import described_inputs
from kfp_tfserving.components.common.samples import generate_inputs, load_sample
from kfp_tfserving.components.common.saved_model.warmup import WARMUP_FILE, read_warmup
from kfp_tfserving.components.export_savedmodel.exporter import export_model

BATCH = {
    "colour": np.array([[b"red"], [b"violet"], [b"unknown"]], dtype=object),
    "text": np.array([b"the cat sat", b"a dog", b""], dtype=object),
}


def _described(model_dir):
    return described_inputs(model_dir)


@pytest.fixture(scope="module")
def keras_strings(tmp_path_factory, tf):
    """(in-memory model, its .keras file, its vocabulary file)."""
    where = tmp_path_factory.mktemp("keras_strings")
    model = keras_lookup_model(where / "colours.txt")
    model.save(where / "lookups.keras")
    return model, where / "lookups.keras", where / "colours.txt"


@pytest.fixture(scope="module")
def image_model(tmp_path_factory, tf):
    return image_bytes_saved_model(tf, tmp_path_factory.mktemp("image") / "cnn")


def test_keras_string_inputs_have_a_string_spec(keras_strings):
    model, _, _ = keras_strings
    specs = {s.name: s for s in keras_input_specs(model)}
    assert (specs["colour"].dtype, specs["colour"].shape) == ("string", (None, 1))
    assert (specs["text"].dtype, specs["text"].shape) == ("string", (None,))


def test_vocabulary_file_travels_inside_the_version_and_nothing_reads_the_build_machine(
    tmp_path, keras_strings
):
    model, _, vocab_file = keras_strings
    export_dir = tmp_path / "export"
    export_keras(model, export_dir)
    want = keras_reference(model)(BATCH)
    moved = tmp_path / "moved"
    shutil.move(export_dir, moved)
    vocab_file.rename(vocab_file.with_suffix(".gone"))  # the build machine's file is no longer there
    try:
        assert (moved / "assets" / "colours.txt").read_text().split() == COLOURS
        np.testing.assert_allclose(served_predict(moved, **BATCH)["scores"], want["scores"], atol=1e-5)
        report = check_model(moved)
    finally:
        vocab_file.with_suffix(".gone").rename(vocab_file)
    assert report.passed, [f.one_line() for f in report.findings]
    assert "file-outside-assets" not in {f.code for f in report.findings}


def test_generated_strings_are_the_models_own_vocabulary(tmp_path, keras_strings):
    model, _, _ = keras_strings
    export_keras(model, tmp_path / "export")
    specs = {s.name: s for s in _described(tmp_path / "export")}
    # Constants of StringLookup/TextVectorization tables and the lines of the vocabulary asset file.
    assert set(specs["colour"].vocabulary) == set(COLOURS) | set(WORDS)
    batch = generate_inputs(list(specs.values()), batch=3)
    assert batch["colour"].shape == (3, 1)
    assert {v.decode() for v in batch["colour"].reshape(-1)} <= set(COLOURS) | set(WORDS)


def test_inputs_without_tables_get_short_ascii_tokens():
    (values,) = generate_inputs([TensorSpecInfo("id", "string", (None,))], batch=2).values()
    assert list(values) == [b"sample-0", b"sample-1"]


def test_an_input_that_reaches_decode_jpeg_gets_distinct_valid_jpegs(tf, image_model):
    (spec,) = _described(image_model)
    assert spec.image_format == "jpeg" and spec.vocabulary is None
    (images,) = generate_inputs([spec], batch=3).values()
    decoded = [tf.io.decode_jpeg(v).numpy() for v in images]
    assert len({d.shape for d in decoded}) == 3  # a few sizes
    assert len(set(images)) == 3
    probs = served_predict(image_model, image_bytes=images)["probs"]
    assert probs.shape == (3, 2) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("image_format", ["jpeg", "png", "bmp", "gif"])
def test_generated_images_decode_with_tensorflows_own_decoder(tf, image_format):
    decoder = {
        "jpeg": tf.io.decode_jpeg,
        "png": tf.io.decode_png,
        "bmp": tf.io.decode_bmp,
        "gif": tf.io.decode_gif,
    }[image_format]
    first, second = encoded_images(2, image_format)
    assert first != second
    assert decoder(first).shape[-3:] == (32, 32, 3) and decoder(second).shape[-3:] == (48, 40, 3)


def test_tf_serving_json_samples_decode_b64_in_both_forms(tmp_path, tf):
    images = jpegs(tf)
    spec = [TensorSpecInfo("image_bytes", "string", (None,))]
    forms = {
        "rows_bare": {"instances": [b64(v) for v in images]},
        "rows_named": {"instances": [{"image_bytes": b64(v)} for v in images]},
        "columns_bare": {"inputs": [b64(v) for v in images]},
        "columns_named": {"inputs": {"image_bytes": [b64(v) for v in images]}},
    }
    for name, doc in forms.items():
        (value,) = load_sample(write_json(tmp_path / f"{name}.json", doc), spec).values()
        assert value.dtype == object and list(value) == images, name
    two = [TensorSpecInfo("a", "string", (None,)), TensorSpecInfo("x", "float32", (None,))]
    mixed = load_sample(write_json(tmp_path / "mixed.json", {"instances": [{"a": "plain", "x": 1.5}]}), two)
    assert list(mixed["a"]) == [b"plain"] and mixed["x"].dtype == np.float32


_FLOAT_X = TensorSpecInfo("x", "float32", (None,))
_STRING_S = TensorSpecInfo("s", "string", (None,))


@pytest.mark.parametrize(
    "doc, specs, expected",
    [
        ({"instances": [{"x": {"b64": "AAAA"}}]}, [_FLOAT_X], "only string tensors take b64"),
        ({"instances": [{"b64": "not base64!"}]}, [_STRING_S], "cannot read the sample"),
        ({"instances": ["a", "b"]}, [_FLOAT_X, _STRING_S], "name each one"),
    ],
)
def test_bad_json_samples_are_one_line_errors(tmp_path, doc, specs, expected):
    with pytest.raises(UserError) as err:
        load_sample(write_json(tmp_path / "bad.json", doc), specs)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_rest_round_trip_sends_images_as_b64_and_gets_them_back(tf):
    images = np.array(jpegs(tf), dtype=object)
    assert json.loads(encode_columnar({"image_bytes": images}))["inputs"]["image_bytes"][0].keys() == {"b64"}
    outputs = {"probs": np.ones((2, 2), np.float32), "thumb_bytes": images}
    assert round_trip_findings("serving_default", {"image_bytes": images}, outputs) == []
    found = round_trip_findings("serving_default", {"image_bytes": images}, {"thumb": images})
    assert [f.code for f in found] == ["rest-binary-output"]


def test_specific_line_keeps_the_decoders_reason(tf, image_model):
    loaded = tf.saved_model.load(str(image_model))
    with pytest.raises(tf.errors.InvalidArgumentError) as err:
        loaded.signatures["serving_default"](image_bytes=tf.constant([b"garbage"]))
    assert specific_line(err.value).startswith("Unknown image file format")


def test_check_runs_the_users_sample_before_generated_inputs(tmp_path, tf):
    """A model only 24x24 JPEGs run: generated images fail, the user's sample passes and becomes warmup."""
    model = image_bytes_saved_model(tf, tmp_path / "fixed", fixed_size=24)
    sample = write_json(tmp_path / "req.json", {"instances": [b64(v) for v in jpegs(tf, ((24, 24),) * 2)]})
    guessed = check_model(model)
    assert not guessed.passed
    (finding,) = [f for f in guessed.findings if f.severity == "error"]
    assert "generated inputs" in finding.message and "Input to reshape" in finding.message
    assert "--sample" in finding.fix
    staged = tmp_path / "staged"
    shutil.copytree(model, staged)
    report = check_model(model, stage_dir=staged, sample_uri=str(sample))
    assert report.passed, [f.one_line() for f in report.findings]
    assert report.runtime.inputs_from == "the sample"
    (record,) = read_warmup(staged / WARMUP_FILE)
    assert list(record.inputs["image_bytes"]) == jpegs(tf, ((24, 24),) * 2)
    # With that warmup file in place and no sample, the check runs the recorded request, not a guess.
    again = check_model(staged)
    assert again.passed and again.runtime.inputs_from == "the warmup file's first request"


def test_check_command_takes_a_sample(tmp_path, tf):
    model = image_bytes_saved_model(tf, tmp_path / "fixed", fixed_size=24)
    sample = write_json(tmp_path / "req.json", {"inputs": [b64(v) for v in jpegs(tf, ((24, 24),))]})
    assert run_cli("check", str(model)).returncode == 1  # generated images are not 24x24
    report = run_cli_json("check", str(model), "--sample", str(sample))
    assert report["runtime"]["inputs_from"] == "the sample"
    assert not (model / WARMUP_FILE).exists()  # the directory is not changed


def _export(tmp_path, source, sample_uri=""):
    loaded = {"format": "saved_model", "entry": source.name}
    return export_model(source.parent, loaded, tmp_path / "export", {}, sample_uri=sample_uri)


def test_export_without_a_sample_fails_in_one_line_naming_sample(tmp_path, tf):
    model = image_bytes_saved_model(tf, tmp_path / "src" / "fixed", fixed_size=24)
    with pytest.raises(UserError) as err:
        _export(tmp_path, model)
    message = str(err.value)
    assert "Input to reshape is a tensor with" in message and "--sample" in message
    assert "\n" not in message and "Graph execution error" not in message


def test_export_with_a_garbage_sample_keeps_unknown_image_format(tmp_path, tf, image_model):
    sample = write_json(tmp_path / "garbage.json", {"instances": [b64(b"not a jpeg"), b64(b"nor this")]})
    with pytest.raises(UserError) as err:
        _export(tmp_path, image_model, str(sample))
    message = str(err.value)
    assert "Unknown image file format" in message and "--sample" in message and str(sample) in message
    assert "\n" not in message and "Graph execution error" not in message


# -- end to end: `kfp-tfserving run`, the published version judged through the serving oracle ------------


@pytest.mark.slow
def test_run_publishes_a_keras3_model_with_string_lookups(tmp_path, keras_strings):
    import keras

    _, keras_file, _ = keras_strings
    base = tmp_path / "serving" / "lookups"
    result = run_cli_json("run", str(keras_file), "--base-path", str(base))
    assert published_versions(base) == [1] and result["signature"]["inputs"]["colour"]["dtype"] == "string"
    want = keras.saving.load_model(keras_file)(BATCH)
    np.testing.assert_allclose(served_predict(base / "1", **BATCH)["scores"], np.asarray(want), atol=1e-5)
    (record,) = read_warmup(base / "1" / WARMUP_FILE)[:1]  # generated from the model's vocabulary
    assert {v.decode() for v in record.inputs["colour"].reshape(-1)} <= set(COLOURS) | set(WORDS)


@pytest.mark.slow
def test_run_publishes_an_image_bytes_model_with_a_b64_json_sample(tmp_path, tf, image_model):
    images = jpegs(tf)
    sample = write_json(tmp_path / "request.json", {"instances": [{"image_bytes": b64(v)} for v in images]})
    base = tmp_path / "serving" / "cnn"
    run_cli_json("run", str(image_model), "--base-path", str(base), "--sample", str(sample))
    batch = np.array(images, dtype=object)
    want = tf.saved_model.load(str(image_model)).signatures["serving_default"](image_bytes=tf.constant(batch))
    served = served_predict(base / "1", image_bytes=batch)
    np.testing.assert_allclose(served["probs"], want["probs"].numpy(), atol=1e-5)
    (record,) = read_warmup(base / "1" / WARMUP_FILE)  # the user's request warms the server up
    assert list(record.inputs["image_bytes"]) == images


@pytest.mark.slow
def test_run_with_a_garbage_image_sample_fails_in_one_line_naming_sample(tmp_path, image_model):
    sample = write_json(tmp_path / "garbage.json", {"inputs": {"image_bytes": [b64(b"\x00junk")]}})
    base = tmp_path / "serving" / "cnn"
    proc = run_cli("run", str(image_model), "--base-path", str(base), "--sample", str(sample))
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Unknown image file format" in lines[0] and "--sample" in lines[0]
    assert "unexpected" not in lines[0] and published_versions(base) == []
