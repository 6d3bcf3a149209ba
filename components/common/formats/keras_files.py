"""Keras model files: Keras 3 `.keras` archives and Keras 2 `.h5`/`.hdf5` files."""

from __future__ import annotations

import contextlib
import json
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kfp_tfserving.components.common.archives import extract_archive
from kfp_tfserving.components.common.errors import FormatError, message_line, specific_line
from kfp_tfserving.components.common.formats.base import ExportOptions, FormatHandler, LoadedModel
from kfp_tfserving.components.common.formats.custom_objects import (
    import_custom_objects,
    missing_class_error,
    missing_classes,
)
from kfp_tfserving.components.common.formats.keras_eras import era_changes, era_config_json
from kfp_tfserving.components.common.formats.keras_export import (
    export_keras,
    keras_input_specs,
    keras_reference,
)
from kfp_tfserving.components.common.formats.keras_load_init import initial_values_deferred
from kfp_tfserving.components.common.formats.keras_precision import compute_dtype
from kfp_tfserving.components.common.tfenv import import_tensorflow, silenced_stderr

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
UNSAFE_FIX = "if you trust this file, pass --allow-unsafe-deserialization (it runs the model's Python code)"
# Layers whose config carries Python code (marshalled bytecode or a function reference).
_CODE_LAYERS = ("Lambda",)


def _keras3():
    import_tensorflow()
    import keras

    return keras


def _keras3_load(keras: Any, path: Path, custom: dict, options: ExportOptions) -> Any:
    """Keras 3's own loader, uncompiled, with safe_mode on unless the user allowed unsafe deserialization."""
    with silenced_stderr(), initial_values_deferred():
        return keras.saving.load_model(
            path,
            custom_objects=custom or None,
            compile=False,
            safe_mode=not options.allow_unsafe_deserialization,
        )


def _reads_as_keras3(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return "config.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _code_layers_in(config_text: str) -> list[str]:
    found: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("class_name") in _CODE_LAYERS:
                found.append(str(node.get("config", {}).get("name", node["class_name"])))
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(json.loads(config_text))
    return found


def _loaded(handler_name: str, model: Any) -> LoadedModel:
    loaded = LoadedModel(handler_name, model, keras_input_specs(model), keras_reference(model))
    loaded.compute_dtype = compute_dtype(model)
    return loaded


def _keras_config(entry: Path) -> str:
    """The saved model config (JSON text) of a .keras archive; '' when unreadable."""
    try:
        with zipfile.ZipFile(entry) as archive:
            return archive.read("config.json").decode()
    except (zipfile.BadZipFile, KeyError, OSError, UnicodeDecodeError):
        return ""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def load_with_era_defaults(
    label: Path,
    config: str,
    keras_version: str,
    weights: Path,
    custom: dict,
    changes: list[str],
    options: ExportOptions,
) -> Any:
    """A Keras 1/2 model rebuilt by tf_keras from its config completed with its era's defaults, then its
    weights loaded (tf_keras converts Keras 1 and cuDNN weight layouts)."""
    import_tensorflow()
    import tf_keras

    if changes:
        print(
            f"{label.name}: Keras {keras_version} model, read with its era's defaults: {', '.join(changes)}"
        )
    try:
        with silenced_stderr():
            model = tf_keras.models.model_from_json(
                era_config_json(config, keras_version), custom_objects=custom or None
            )
            model.load_weights(str(weights))
    except Exception as err:
        names = missing_classes(str(err))
        if names:
            raise missing_class_error(label, names, config, options.custom_objects) from None
        raise FormatError(
            f"{label}: tf_keras cannot rebuild this Keras {keras_version} model: {specific_line(err)}",
            "load it with the Keras version that saved it to check the file; re-save it with model.save()",
        ) from None
    return model


def _load_failure(entry: Path, err: BaseException, config: str, options: ExportOptions) -> FormatError:
    """Keras's error as one line: the missing class and --custom-objects, Lambda and the unsafe flag, or its
    most specific line."""
    text = str(err)
    names = missing_classes(text)
    if names:
        return missing_class_error(entry, names, config, options.custom_objects)
    if "safe_mode" in text or "unsafe" in text.lower():
        return FormatError(f"{entry}: the model contains Python code (a Lambda layer)", UNSAFE_FIX)
    return FormatError(
        f"{entry}: Keras cannot load it: {specific_line(err)}",
        "load it with the Keras version that saved it to check the file; re-save it with model.save()",
    )


@contextlib.contextmanager
def _unpacked(entry: Path) -> Iterator[Path]:
    """The .keras archive unpacked (safely) into a scratch directory that Keras loads as a saved model
    directory, reading the weights file tensor by tensor. Given the archive itself, Keras first reads
    the whole weights file into memory whenever psutil reports enough free memory (the node's, which
    ignores the pod's limit): the weights twice in memory at the load's peak."""
    with tempfile.TemporaryDirectory(prefix="kfp-tfserving-keras-") as scratch:
        target = Path(scratch) / "model"
        extract_archive(entry, target, kind="zip", label=str(entry))
        yield target


class KerasV3Handler(FormatHandler):
    name = "keras"
    description = "Keras 3 .keras archive"

    def detect(self, path: Path) -> Path | None:
        if path.is_file() and path.suffix == ".keras":
            return path
        return None

    def load(self, entry: Path, options: ExportOptions) -> LoadedModel:
        if not _reads_as_keras3(entry):
            raise FormatError(
                f"{entry}: not a valid .keras archive (no config.json in a zip)",
                "re-save the model with model.save('model.keras')",
            )
        keras = _keras3()
        custom = import_custom_objects(options.custom_objects)
        with _unpacked(entry) as unpacked:
            try:
                model = _keras3_load(keras, unpacked, custom, options)
            except Exception as err:
                raise _load_failure(entry, err, _keras_config(entry), options) from None
        return _loaded(self.name, model)

    def export(self, loaded: LoadedModel, export_dir: Path) -> None:
        export_keras(loaded.model, export_dir)


class KerasH5Handler(FormatHandler):
    name = "keras_h5"
    description = "Keras 2 HDF5 model file (.h5/.hdf5), Keras 2.0-era files included"

    def detect(self, path: Path) -> Path | None:
        if not path.is_file():
            return None
        if path.suffix.lower() in (".h5", ".hdf5"):
            return path
        with open(path, "rb") as f:
            return path if f.read(8) == HDF5_MAGIC else None

    def _model_config(self, entry: Path) -> tuple[str, str]:
        """The file's model config (JSON text) and the Keras version that wrote it ('1' when unsaid, as
        Keras 1 wrote none)."""
        import h5py

        try:
            with h5py.File(entry, "r") as f:
                config = f.attrs.get("model_config")
                version = f.attrs.get("keras_version", "1")
        except OSError as err:
            raise FormatError(
                f"{entry}: not a readable HDF5 file ({message_line(err)})",
                "the file is truncated or damaged; copy it again from its source",
            ) from None
        if config is None:
            raise FormatError(
                f"{entry}: the HDF5 file holds weights only (no model_config)",
                "save the whole model with model.save(), not save_weights()",
            )
        return _text(config), _text(version)

    def load(self, entry: Path, options: ExportOptions) -> LoadedModel:
        config, keras_version = self._model_config(entry)
        code_layers = _code_layers_in(config)
        if code_layers and not options.allow_unsafe_deserialization:
            raise FormatError(
                f"{entry}: the model contains Python code (Lambda layer {code_layers[0]})", UNSAFE_FIX
            )
        custom = import_custom_objects(options.custom_objects)
        changes = era_changes(json.loads(config), keras_version)
        if changes:
            model = load_with_era_defaults(entry, config, keras_version, entry, custom, changes, options)
            loaded = _loaded(self.name, model)
            loaded.loaded_with = "tf_keras"
            return loaded
        # Keras 3 reads most Keras 2 files; tf_keras reads the rest (older layer configs).
        try:
            model = _keras3_load(_keras3(), entry, custom, options)
            return _loaded(self.name, model)
        except Exception as keras3_error:
            first_error = keras3_error
        try:
            import tf_keras

            with silenced_stderr():
                model = tf_keras.models.load_model(entry, custom_objects=custom or None, compile=False)
        except Exception as err:
            names = missing_classes(f"{first_error}\n{err}")
            if names:
                raise missing_class_error(entry, names, config, options.custom_objects) from None
            raise FormatError(
                f"{entry}: neither Keras 3 ({specific_line(first_error)}) nor tf_keras ({specific_line(err)}) "
                "can load it",
                "load it with the Keras version that saved it to check the file; re-save it with model.save()",
            ) from None
        loaded = _loaded(self.name, model)
        loaded.loaded_with = "tf_keras"
        return loaded

    def export(self, loaded: LoadedModel, export_dir: Path) -> None:
        export_keras(loaded.model, export_dir)
