"""Python-defined Keras layers: --custom-objects imports their module; the refusal names what is missing.

The layer's module is written to tmp_path and only ever imported in subprocesses that put it on
PYTHONPATH, so this test process never registers the class (a registered class would hide the refusal).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import published_versions, run_cli

from kfp_tfserving.components.common.errors import FormatError, UserError
from kfp_tfserving.components.common.formats.custom_objects import parse_custom_objects
from kfp_tfserving.components.common.tfenv import QUIET_ENV
from kfp_tfserving.components.export_savedmodel.exporter import export_model

LAYERS = '''
import keras


@keras.saving.register_keras_serializable(package="shop")
class Scale(keras.layers.Layer):
    """y = x * w * factor: a trained weight and a Python-side hyperparameter."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, shape):
        self.w = self.add_weight(shape=(shape[-1],), initializer="ones")

    def call(self, x):
        return x * self.w * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
'''

BUILD = """
import sys, numpy as np, keras, shop_layers
out = sys.argv[1]
x = keras.Input((3,), name="x")
h = keras.layers.Dense(2, kernel_initializer="ones")(x)
y = shop_layers.Scale(factor=3.0, name="scaled")(h)
if "--lambda" in sys.argv:
    y = keras.layers.Lambda(lambda t: t + 1.0, name="plus_one")(y)
model = keras.Model(x, y)
model.save(out + "/model.keras")
model.save(out + "/model.h5")
probe = np.arange(6, dtype="float32").reshape(2, 3)
np.savez(out + "/expected.npz", x=probe, y=model.predict(probe, verbose=0))
"""


def _python(code: str, *args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **QUIET_ENV}
    env.pop("PYTHONPATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=600
    )


@pytest.fixture(scope="module")
def custom_model(tmp_path_factory) -> Path:
    """A module defining a registered layer, and a .keras/.h5 model using it (built in a subprocess)."""
    root = tmp_path_factory.mktemp("custom")
    (root / "lib").mkdir()
    (root / "lib" / "shop_layers.py").write_text(textwrap.dedent(LAYERS))
    proc = _python(BUILD, str(root), pythonpath=root / "lib")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return root


def _export(source: Path, tmp_path: Path, **kwargs) -> dict:
    metadata: dict = {}
    export_model(source, {}, tmp_path / "export", metadata, **kwargs)
    return metadata


@pytest.mark.parametrize("name", ["model.keras", "model.h5"])
def test_missing_class_is_named_with_its_module_and_the_option(tmp_path, custom_model, name):
    with pytest.raises(FormatError) as err:
        _export(custom_model / name, tmp_path)
    message = err.value.one_line()
    assert "'shop>Scale'" in message or "'Scale'" in message
    assert "Could not locate class 'Scale'" in message
    assert "--custom-objects" in message and "PYTHONPATH" in message
    if name == "model.keras":  # the .keras config records the module: the fix names it
        assert "--custom-objects shop_layers" in message
    assert "\n" not in message and not message.startswith("unexpected")


def test_a_module_that_cannot_be_imported_says_where_it_must_be(tmp_path, custom_model):
    with pytest.raises(UserError) as err:
        _export(custom_model / "model.keras", tmp_path, custom_objects=["shop_layers"])
    message = err.value.one_line()
    assert message.startswith("--custom-objects shop_layers: cannot import it (ModuleNotFoundError")
    assert "importable where the export step runs" in message


@pytest.mark.parametrize("item", ["shop layers", "shop_layers:", "shop_layers:Scale,", "1mod", ":Scale"])
def test_malformed_custom_objects_items_are_refused(item):
    if item in ("shop_layers:", "shop_layers:Scale,"):  # empty names are tolerated, not invented
        assert parse_custom_objects([item])[0][0] == "shop_layers"
        return
    with pytest.raises(UserError, match="expected MODULE"):
        parse_custom_objects([item])


EXPORT = """
import json, sys
from pathlib import Path
from kfp_tfserving.components.export_savedmodel.exporter import run_export_step
meta = {}
run_export_step(Path(sys.argv[1]), {}, Path(sys.argv[2]), meta, custom_objects=sys.argv[3].split("|"),
                allow_unsafe_deserialization="--unsafe" in sys.argv)
print("PARITY", json.dumps(meta["parity_passed"]))
"""

SERVE = """
import sys, numpy as np
from kfp_tfserving.components.common.serving_oracle import load_served
expected = np.load(sys.argv[2])
try:
    import shop_layers  # noqa: F401
    sys.exit("the layer module is importable here")
except ImportError:
    pass
with load_served(sys.argv[1]) as served:
    got = served.predict({"x": expected["x"]})
np.testing.assert_allclose(got[next(iter(got))], expected["y"], rtol=1e-6)
print("SERVED OK")
"""


@pytest.mark.parametrize("item", ["shop_layers", "shop_layers:Scale"])
def test_custom_objects_export_needs_no_python_code_to_serve(tmp_path, custom_model, item):
    export_dir = tmp_path / "export"
    proc = _python(
        EXPORT, str(custom_model / "model.keras"), str(export_dir), item, pythonpath=custom_model / "lib"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "PARITY true" in proc.stdout and "imported shop_layers" in proc.stdout
    # A fresh process where the module is NOT importable: TF Serving has no Python either.
    served = _python(SERVE, str(export_dir), str(custom_model / "expected.npz"))
    assert served.returncode == 0 and "SERVED OK" in served.stdout, served.stderr[-2000:]


def test_lambda_layers_still_need_unsafe_deserialization(tmp_path_factory):
    root = tmp_path_factory.mktemp("custom_lambda")
    (root / "lib").mkdir()
    (root / "lib" / "shop_layers.py").write_text(textwrap.dedent(LAYERS))
    assert _python(BUILD, str(root), "--lambda", pythonpath=root / "lib").returncode == 0
    args = (str(root / "model.keras"), str(root / "export"), "shop_layers")
    refused = _python(EXPORT, *args, pythonpath=root / "lib")
    assert refused.returncode == 2
    assert (
        "contains Python code (a Lambda layer); if you trust this file, pass --allow-unsafe-deserialization"
        in (refused.stderr)
    )
    allowed = _python(EXPORT, *args, "--unsafe", pythonpath=root / "lib")
    assert allowed.returncode == 0 and "PARITY true" in allowed.stdout, allowed.stderr[-2000:]


@pytest.mark.slow
def test_run_publishes_a_model_with_a_registered_layer(tmp_path, custom_model):
    base = tmp_path / "serving" / "shop"
    env_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(custom_model / "lib")  # the steps' environment, as in their image
    try:
        proc = run_cli(
            "run", str(custom_model / "model.h5"), "--base-path", str(base), "--custom-objects", "shop_layers"
        )
    finally:
        os.environ.pop("PYTHONPATH") if env_path is None else os.environ.update(PYTHONPATH=env_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert published_versions(base) == [1]
    served = _python(SERVE, str(base / "1"), str(custom_model / "expected.npz"))
    assert served.returncode == 0 and "SERVED OK" in served.stdout, served.stderr[-2000:]
    expected = np.load(custom_model / "expected.npz")
    assert expected["y"].shape == (2, 2)
