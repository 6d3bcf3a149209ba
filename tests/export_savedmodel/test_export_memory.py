"""Multi-GB models must not be held twice in the export step (timed figures: benchmarks/bench_large_model.py).

A cheap structural guard: the source Keras model is gone (garbage-collected) when the serving session
loads the export for the parity check, so the step's peak is one model, not two.
"""

from __future__ import annotations

import gc
import weakref

from kfp_tfserving.components.common.formats.keras_files import KerasV3Handler
from kfp_tfserving.components.export_savedmodel import exporter


def test_the_source_model_is_freed_before_the_serving_session_loads(tmp_path, keras_two_io, monkeypatch):
    models: list[weakref.ref] = []
    alive_at_parity: list[bool] = []
    load, served_outputs = KerasV3Handler.load, exporter._served_outputs

    def tracking_load(self, entry, options):
        loaded = load(self, entry, options)
        models.append(weakref.ref(loaded.model))
        return loaded

    def checking_served_outputs(*args, **kwargs):
        gc.collect()
        alive_at_parity.append(models[0]() is not None)
        return served_outputs(*args, **kwargs)

    monkeypatch.setattr(KerasV3Handler, "load", tracking_load)
    monkeypatch.setattr(exporter, "_served_outputs", checking_served_outputs)
    metadata: dict = {}
    exporter.export_model(keras_two_io, {}, tmp_path / "export", metadata)
    assert metadata["parity_passed"]
    assert alive_at_parity == [False]


def test_keras_exports_save_each_weight_once(tmp_path, keras_two_io, tf):
    """The checkpoint holds each Keras variable under one key: bytes on disk and at load are the model's."""
    import keras

    exporter.export_model(keras_two_io, {}, tmp_path / "export", {})
    saved = [
        shape
        for name, shape in tf.train.list_variables(str(tmp_path / "export" / "variables" / "variables"))
        if name.endswith("VARIABLE_VALUE")
    ]
    model = keras.saving.load_model(keras_two_io)
    assert sorted(map(tuple, saved)) == sorted(tuple(v.shape) for v in model.weights)
