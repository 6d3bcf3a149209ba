"""Mixed-precision Keras models: parity tolerance from the compute dtype, half outputs served as float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kfp_tfserving.components.check_signatures.check_step import check_model
from kfp_tfserving.components.common.saved_model.proto import read_signatures
from kfp_tfserving.components.common.serving_oracle import load_served
from kfp_tfserving.components.export_savedmodel.exporter import export_model
from kfp_tfserving.components.export_savedmodel.parity import compare_outputs, tolerance_for


def build_mixed(path: Path, policy: str) -> Path:
    """A deep-ish MLP under `policy`: output `half` in the compute dtype, `full` forced to float32."""
    import keras

    keras.mixed_precision.set_global_policy(policy)
    try:
        x = keras.Input((32,), name="x")
        h = x
        for _ in range(4):
            h = keras.layers.Dense(64, activation="tanh")(h)
        half = keras.layers.Dense(8, name="half")(h)
        full = keras.layers.Dense(8, name="full", dtype="float32")(h)
        keras.Model(x, {"half": half, "full": full}).save(path)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return path


@pytest.mark.parametrize(
    ("policy", "compute", "epsilon"),
    [("mixed_float16", "float16", 2**-10), ("mixed_bfloat16", "bfloat16", 2**-7)],
)
def test_mixed_precision_exports_with_a_tolerance_from_its_compute_dtype(
    tmp_path, tf, policy, compute, epsilon
):
    source = build_mixed(tmp_path / "model.keras", policy)
    export_dir, metadata = tmp_path / "export", {}
    export_model(source, {}, export_dir, metadata)
    assert metadata["parity_passed"]
    assert metadata["parity_tolerance"] == {
        "atol": 4 * epsilon,
        "rtol": 4 * epsilon,
        "compute_dtype": compute,
    }
    # The half output is widened to float32 at the serving boundary: REST cannot encode half tensors.
    assert metadata["widened_outputs"] == {"half": compute}
    outputs = {s.name: s.dtype for s in read_signatures(export_dir)["serving_default"].outputs}
    assert outputs == {"half": "float32", "full": "float32"}
    import keras

    model = keras.saving.load_model(source)
    probe = np.random.default_rng(3).normal(size=(4, 32)).astype(np.float32)
    want = model(probe, training=False)
    with load_served(export_dir) as served:
        got = served.predict({"x": probe})
    # Widening is exact: every served value is a value of the compute dtype.
    np.testing.assert_array_equal(got["half"].astype(compute), got["half"].astype(compute).astype(np.float32))
    for name in ("half", "full"):
        np.testing.assert_allclose(
            got[name], np.asarray(want[name], dtype=np.float32), atol=4 * epsilon, rtol=4 * epsilon
        )
    report = check_model(export_dir)
    assert report.passed, [f.one_line() for f in report.findings]
    assert "unsupported-dtype" not in {f.code for f in report.findings}


def test_float32_models_keep_the_given_tolerance_and_half_ones_widen_only_upwards():
    assert tolerance_for("float32", 1e-4, 1e-4) == (1e-4, 1e-4)
    assert tolerance_for("float16", 1e-4, 1e-4) == (4 * 2**-10, 4 * 2**-10)
    assert tolerance_for("bfloat16", 0.5, 1e-4) == (0.5, 4 * 2**-7)


def test_a_wrong_mixed_precision_export_still_fails_parity():
    import ml_dtypes

    want = {"y": np.array([[1.0, 2.0]], dtype=ml_dtypes.bfloat16)}
    close = {"y": np.array([[1.0078125, 2.0]], dtype=np.float32)}  # one bfloat16 ulp at 1.0
    wrong = {"y": np.array([[1.25, 2.0]], dtype=np.float32)}
    atol, rtol = tolerance_for("bfloat16", 1e-4, 1e-4)
    assert compare_outputs(want, close, atol, rtol)[0].within_tolerance
    (result,) = compare_outputs(want, wrong, atol, rtol)
    assert not result.within_tolerance and result.max_abs_diff == pytest.approx(0.25)
