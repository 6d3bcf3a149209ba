"""Checkpoint values read through the C API's RestoreV2 equal what tf.train.load_checkpoint returns, and the
model fingerprint's value digests stay what they were when TensorFlow's Python reader computed them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from kfp_tfserving.components.common.checkpoint_values import checkpoint_dtypes, checkpoint_values
from kfp_tfserving.components.common.saved_model.fingerprint import (
    CHECKPOINT_BOOKKEEPING,
    checkpoint_value_digests,
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    import tensorflow as tf

    rng = np.random.default_rng(7)
    values = {
        "matrix": tf.Variable(rng.random((64, 33), dtype=np.float32)),
        "f64": tf.Variable(rng.random(5)),
        "half": tf.Variable(np.float16(1.5)),
        "bf16": tf.Variable(tf.constant([1.0, -2.5], tf.bfloat16)),
        "flag": tf.Variable(True),
        "count": tf.Variable(np.int64(-3)),
        "small": tf.Variable(np.array([[1, 2], [3, 4]], np.int8)),
        "word": tf.Variable(b"hello"),
        "words": tf.Variable([b"a", b"", b"\x00\xffbytes"]),
    }
    root = tmp_path_factory.mktemp("ckpt")
    (root / "variables").mkdir()
    tf.train.Checkpoint(**values).write(str(root / "variables" / "variables"))
    return root


def _reference_digests(model_dir: Path) -> dict[str, str]:
    """The value digests as the fingerprint defined them over tf.train.load_checkpoint's values."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(model_dir / "variables" / "variables"))
    out = {}
    for key, dtype in reader.get_variable_to_dtype_map().items():
        if key in CHECKPOINT_BOOKKEEPING:
            continue
        value = reader.get_tensor(key)
        h = hashlib.sha256(f"{dtype.name}|{list(getattr(value, 'shape', ()))}|".encode())
        if isinstance(value, bytes):
            h.update(value)
        elif value.dtype.kind == "O":
            for item in value.ravel():
                h.update(len(item).to_bytes(8, "little") + item)
        else:
            h.update(np.ascontiguousarray(value).tobytes())
        out[key] = h.hexdigest()
    return out


def test_every_value_equals_tensorflows_reader(checkpoint):
    import tensorflow as tf

    prefix = checkpoint / "variables" / "variables"
    reader = tf.train.load_checkpoint(str(prefix))
    dtypes = checkpoint_dtypes(prefix)
    assert set(dtypes) == set(reader.get_variable_to_dtype_map())
    keys = sorted(k for k in dtypes if k not in CHECKPOINT_BOOKKEEPING)
    seen = 0
    for key, value in checkpoint_values(prefix, keys, dtypes):
        expected = reader.get_tensor(key)
        assert (
            type(value) is bytes if isinstance(expected, bytes) else np.asarray(value).dtype == expected.dtype
        )
        np.testing.assert_array_equal(np.asarray(value), np.asarray(expected))
        assert np.shape(value) == np.shape(expected), key
        seen += 1
    assert seen == 9


def test_fingerprint_value_digests_are_unchanged(checkpoint):
    assert checkpoint_value_digests(checkpoint) == _reference_digests(checkpoint)


def test_a_missing_data_shard_is_an_error_naming_it(checkpoint, tmp_path):
    import shutil

    broken = tmp_path / "m"
    shutil.copytree(checkpoint, broken)
    for shard in (broken / "variables").glob("variables.data-*"):
        shard.unlink()
    with pytest.raises(Exception, match="variables.data"):
        checkpoint_value_digests(broken)
