"""Multi-GB models must not be held twice in the export step (timed figures: benchmarks/bench_large_model.py).

A cheap structural guard: the source Keras model is gone (garbage-collected) when the serving session
loads the export for the parity check, so the step's peak is one model, not two.
"""

from __future__ import annotations

import gc
import weakref

import pytest

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


def _deep_keras_model(path, tf):
    """A .keras file of ~10 MB of weights in ten 1 MB Dense kernels."""
    import keras

    inputs = hidden = keras.Input((512,), name="x")
    for i in range(10):
        hidden = keras.layers.Dense(512, name=f"dense_{i}")(hidden)
    keras.Model(inputs, hidden).save(path)
    return path


def test_a_keras_archive_loads_without_its_weights_file_in_memory(tmp_path, tf):
    """Keras reads a .keras archive's whole weights file into one buffer when psutil reports the node's
    memory as enough; the handler loads an unpacked copy instead, tensor by tensor. tracemalloc sees what
    Python and numpy allocate (the loaded variables' own buffers among them): the load's peak above what
    the loaded model keeps stays a tensor or two, far below one weights file."""
    import tracemalloc

    from kfp_tfserving.components.common.formats import ExportOptions

    entry = _deep_keras_model(tmp_path / "deep.keras", tf)
    weights_bytes = 10 * 2**20
    KerasV3Handler().load(entry, ExportOptions())  # first use: imports and one-time caches
    tracemalloc.start()
    try:
        loaded = KerasV3Handler().load(entry, ExportOptions())
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(int(w.numpy().size) * 4 for w in loaded.model.weights) >= weights_bytes
    transient = peak - kept
    assert transient < weights_bytes / 2, f"{transient / 2**20:.1f} MB held only while loading"


def test_the_unpacked_copy_is_removed_and_a_hostile_archive_is_refused(tmp_path, tf, monkeypatch):
    import tempfile
    import zipfile

    from kfp_tfserving.components.common.errors import UserError
    from kfp_tfserving.components.common.formats import ExportOptions

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    good = _deep_keras_model(tmp_path / "deep.keras", tf)
    KerasV3Handler().load(good, ExportOptions())
    assert list(scratch.iterdir()) == []

    evil = tmp_path / "evil.keras"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(evil, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
        dst.writestr("../escaped.txt", b"outside")
    with pytest.raises(UserError, match="escapes the extraction directory"):
        KerasV3Handler().load(evil, ExportOptions())
    assert not (scratch.parent / "escaped.txt").exists()
    assert list(scratch.iterdir()) == []


def test_released_memory_goes_back_through_malloc_trim(monkeypatch):
    from kfp_tfserving.components.common import heap

    calls = []
    monkeypatch.setattr(heap, "_malloc_trim", lambda: calls.append)

    class Cycle:
        pass

    cycle = Cycle()
    cycle.me = cycle
    gone = weakref.ref(cycle)
    gc.disable()
    try:
        del cycle
        heap.release_freed_memory()
        assert gone() is None  # the cycle was collected before the pages were handed back
    finally:
        gc.enable()
    assert calls == [0]


def test_malloc_trim_is_found_on_glibc():
    import platform

    from kfp_tfserving.components.common import heap

    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert heap._malloc_trim() is not None
    heap.release_freed_memory()  # a no-op elsewhere, never an error


def test_large_blocks_are_mapped_apart_before_the_export_loads_anything(tmp_path, keras_two_io, monkeypatch):
    from kfp_tfserving.components.common import heap

    calls = []

    class FakeLibc:  # ctypes functions take argtypes; a plain function does too
        def __init__(self):
            self.mallopt = lambda option, value: calls.append((option, value))

    monkeypatch.setattr(heap, "_libc", FakeLibc)
    load = KerasV3Handler.load

    def checking_load(self, entry, options):
        assert calls == [(heap.M_MMAP_THRESHOLD, heap.LARGE_BLOCK)]
        return load(self, entry, options)

    monkeypatch.setattr(KerasV3Handler, "load", checking_load)
    exporter.export_model(keras_two_io, {}, tmp_path / "export", {})
    assert calls == [(heap.M_MMAP_THRESHOLD, 1024 * 1024)]
