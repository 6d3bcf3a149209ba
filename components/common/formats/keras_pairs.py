"""Keras architecture + weights pairs: `model.to_json()` / `to_yaml()` (or Keras 3's `config.json`) next to
the weights `model.save_weights()` wrote (HDF5, with or without an extension).

Keras 1/2 architectures are rebuilt by tf_keras with their era's defaults (keras_eras.py), Keras 3 ones by
Keras; both in safe mode unless the user consents to Python code.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from kfp_tfserving.components.common.errors import FormatError, specific_line
from kfp_tfserving.components.common.formats.base import ExportOptions, FormatHandler, LoadedModel
from kfp_tfserving.components.common.formats.custom_objects import (
    import_custom_objects,
    missing_class_error,
    missing_classes,
)
from kfp_tfserving.components.common.formats.keras_eras import era_changes
from kfp_tfserving.components.common.formats.keras_export import export_keras
from kfp_tfserving.components.common.formats.keras_files import (
    HDF5_MAGIC,
    UNSAFE_FIX,
    _code_layers_in,
    _keras3,
    _loaded,
    load_with_era_defaults,
)
from kfp_tfserving.components.common.tfenv import silenced_stderr

ARCH_SUFFIXES = (".json", ".yaml", ".yml")
_MAX_ARCH_BYTES = 64 * 1024 * 1024
PAIR_FIX = "give the architecture file with --weights WEIGHTS (pipeline parameter weights_uri)"


def _yaml_loader():
    import yaml

    class _Loader(yaml.SafeLoader):
        """Keras 1/2 wrote to_yaml() with yaml.dump: tuples carry a python/tuple tag; read them as lists,
        and nothing else Python-specific."""

    _Loader.add_constructor(
        "tag:yaml.org,2002:python/tuple", lambda loader, node: loader.construct_sequence(node)
    )
    return _Loader


def read_architecture(path: Path) -> dict | None:
    """The Keras model config of a JSON/YAML file, or None when the file is not one."""
    if (
        path.suffix.lower() not in ARCH_SUFFIXES
        or not path.is_file()
        or path.stat().st_size > _MAX_ARCH_BYTES
    ):
        return None
    try:
        text = path.read_text()
        if path.suffix.lower() == ".json":
            doc = json.loads(text)
        else:
            import yaml

            doc = yaml.load(text, Loader=_yaml_loader())  # noqa: S506 (a SafeLoader subclass)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    except Exception:  # yaml.YAMLError
        return None
    if isinstance(doc, dict) and isinstance(doc.get("class_name"), str) and "config" in doc:
        return doc
    return None


def _is_hdf5(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(8) == HDF5_MAGIC
    except OSError:
        return False


def _hdf5_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and _is_hdf5(p))


def _architectures(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if not p.name.startswith(".") and read_architecture(p) is not None
    )


def is_keras3_config(doc: dict) -> bool:
    """Keras 3 serializes a model with its module and registered name; Keras 1/2 with keras_version."""
    return "module" in doc or "registered_name" in doc or str(doc.get("keras_version", "")).startswith("3")


def _weights_version(weights: Path) -> str:
    import h5py

    try:
        with h5py.File(weights, "r") as f:
            group = f.get("model_weights", f)
            version = group.attrs.get("keras_version", f.attrs.get("keras_version", "1"))
    except (OSError, KeyError):
        return ""
    return version.decode() if isinstance(version, bytes) else str(version)


def _is_legacy_weights(weights: Path) -> bool:
    """Keras 1/2 save_weights() layout (layer_names), as opposed to Keras 3's .weights.h5."""
    import h5py

    with h5py.File(weights, "r") as f:
        return "layer_names" in f.attrs or "model_weights" in f


class KerasPairHandler(FormatHandler):
    name = "keras_architecture_weights"
    description = "Keras architecture (to_json/to_yaml, Keras 3 config.json) + HDF5 weights"

    def detect(self, path: Path) -> Path | None:
        if path.is_file():
            return path if read_architecture(path) is not None else None
        if not path.is_dir():
            return None
        if len(_architectures(path)) == 1 and _hdf5_files(path):
            return path
        return None

    def _pair(self, entry: Path) -> tuple[Path, Path]:
        folder = entry if entry.is_dir() else entry.parent
        arch = [entry] if entry.is_file() else _architectures(folder)
        if len(arch) != 1:
            raise FormatError(f"{folder}: {len(arch)} architecture files, expected one", PAIR_FIX)
        weights = _hdf5_files(folder)
        if not weights:
            raise FormatError(f"{arch[0]}: a Keras architecture without its weights", PAIR_FIX)
        if len(weights) > 1:
            names = ", ".join(w.name for w in weights)
            raise FormatError(f"{folder}: several weights files ({names}), which one is meant?", PAIR_FIX)
        return arch[0], weights[0]

    def load(self, entry: Path, options: ExportOptions) -> LoadedModel:
        arch, weights = self._pair(entry)
        doc = read_architecture(arch)
        config_text = json.dumps(doc)
        code_layers = _code_layers_in(config_text)
        if code_layers and not options.allow_unsafe_deserialization:
            raise FormatError(
                f"{arch}: the model contains Python code (Lambda layer {code_layers[0]})", UNSAFE_FIX
            )
        custom = import_custom_objects(options.custom_objects)
        print(f"architecture {arch.name}, weights {weights.name}", flush=True)
        if is_keras3_config(doc):
            model = self._keras3(arch, doc, weights, custom, options)
            return _loaded(self.name, model)
        version = str(doc.get("keras_version") or _weights_version(weights) or "2")
        config = json.dumps({"class_name": doc["class_name"], "config": doc["config"]})
        with tempfile.TemporaryDirectory(prefix="kfp-tfserving-weights-") as tmp:
            # tf_keras tells HDF5 from TF checkpoints by the name's extension.
            named = Path(tmp) / "weights.h5"
            named.symlink_to(weights.resolve())
            model = load_with_era_defaults(
                arch, config, version, named, custom, era_changes(doc, version), options
            )
        loaded = _loaded(self.name, model)
        loaded.loaded_with = "tf_keras"
        return loaded

    def _keras3(self, arch: Path, doc: dict, weights: Path, custom: dict, options: ExportOptions) -> Any:
        keras = _keras3()
        try:
            with silenced_stderr(), tempfile.TemporaryDirectory(prefix="kfp-tfserving-weights-") as tmp:
                model = keras.saving.deserialize_keras_object(
                    doc, custom_objects=custom or None, safe_mode=not options.allow_unsafe_deserialization
                )
                # Keras 3 reads its own layout from a name ending .weights.h5, Keras 2's from .h5.
                named = Path(tmp) / ("weights.h5" if _is_legacy_weights(weights) else "model.weights.h5")
                named.symlink_to(weights.resolve())
                model.load_weights(str(named))
        except Exception as err:
            names = missing_classes(str(err))
            if names:
                raise missing_class_error(arch, names, json.dumps(doc), options.custom_objects) from None
            text = str(err)
            if "safe_mode" in text or "unsafe" in text.lower():
                raise FormatError(
                    f"{arch}: the model contains Python code (a Lambda layer)", UNSAFE_FIX
                ) from None
            raise FormatError(
                f"{arch}: Keras cannot build it with the weights {weights.name}: {specific_line(err)}",
                "check that the weights were saved from this architecture",
            ) from None
        return model

    def export(self, loaded: LoadedModel, export_dir: Path) -> None:
        export_keras(loaded.model, export_dir)
