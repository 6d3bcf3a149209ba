"""Tiny models with string inputs, built inside the tests: Keras 3 lookups and an encoded-image CNN."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np

COLOURS = ["red", "green", "blue", "violet"]
WORDS = ["the", "cat", "sat", "mat"]


def keras_lookup_model(vocab_file: Path):
    """Two string inputs: `colour` (StringLookup from a list and from a vocabulary file, Hashing,
    IntegerLookup on the indices) and `text` (TextVectorization)."""
    import keras

    vocab_file.write_text("\n".join(COLOURS) + "\n")
    colour = keras.Input((1,), dtype="string", name="colour")
    text = keras.Input((), dtype="string", name="text")
    index = keras.layers.StringLookup(vocabulary=COLOURS[:3])(colour)
    from_file = keras.layers.StringLookup(vocabulary=str(vocab_file), name="file_lookup")(colour)
    relabelled = keras.layers.IntegerLookup(vocabulary=[1, 2, 3])(from_file)
    hashed = keras.layers.Hashing(num_bins=8)(colour)
    tokens = keras.layers.TextVectorization(max_tokens=10, output_sequence_length=3, vocabulary=WORDS)(text)
    features = keras.layers.Concatenate()(
        [keras.ops.cast(t, "float32") for t in (index, from_file, relabelled, hashed, tokens)]
    )
    scores = keras.layers.Dense(3, name="scores")(features)
    return keras.Model([colour, text], scores)


def image_bytes_saved_model(tf, path: Path, fixed_size: int | None = None) -> Path:
    """A SavedModel whose serving_default takes `image_bytes` (JPEG) -> decode -> resize -> tiny CNN.

    With `fixed_size` the decoded image is reshaped to that size instead of resized: only images of
    exactly that size run (the case generated images cannot satisfy).
    """
    module = tf.Module()
    rng = np.random.default_rng(0)
    module.kernel = tf.Variable(rng.normal(size=(3, 3, 3, 4)).astype(np.float32))
    module.dense = tf.Variable(rng.normal(size=(4, 2)).astype(np.float32))

    def decode(encoded):
        image = tf.io.decode_jpeg(encoded, channels=3)
        if fixed_size:
            image = tf.reshape(image, [fixed_size, fixed_size, 3])
        return tf.image.resize(tf.cast(image, tf.float32) / 255.0, [16, 16])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(image_bytes):
        images = tf.map_fn(decode, image_bytes, fn_output_signature=tf.float32)
        hidden = tf.nn.relu(tf.nn.conv2d(images, module.kernel, 1, "SAME"))
        pooled = tf.reduce_mean(hidden, axis=[1, 2])
        return {"probs": tf.nn.softmax(tf.matmul(pooled, module.dense))}

    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return path


def jpegs(tf, sizes=((20, 30), (36, 24))) -> list[bytes]:
    rng = np.random.default_rng(7)
    return [
        bytes(tf.io.encode_jpeg(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).numpy()) for h, w in sizes
    ]


def b64(value: bytes) -> dict:
    return {"b64": base64.b64encode(value).decode("ascii")}


def write_json(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path
