"""Keras 2 SavedModel directories (`keras_metadata.pb` beside saved_model.pb), loaded through tf_keras."""

from __future__ import annotations

from pathlib import Path

from kfp_tfserving.components.common.errors import FormatError, specific_line
from kfp_tfserving.components.common.formats.base import ExportOptions, FormatHandler, LoadedModel
from kfp_tfserving.components.common.formats.custom_objects import (
    import_custom_objects,
    missing_class_error,
    missing_classes,
)
from kfp_tfserving.components.common.formats.keras_export import (
    export_keras,
    keras_input_specs,
    keras_output_names,
    keras_reference,
)
from kfp_tfserving.components.common.formats.saved_model import SavedModelHandler, is_saved_model_dir
from kfp_tfserving.components.common.saved_model.proto import read_signatures
from kfp_tfserving.components.common.tfenv import import_tensorflow, silenced_stderr

KERAS_MARKER = "keras_metadata.pb"


class KerasSavedModelHandler(FormatHandler):
    name = "keras_saved_model"
    description = "Keras 2 SavedModel directory (keras_metadata.pb), loaded with tf_keras"

    def detect(self, path: Path) -> Path | None:
        return path if is_saved_model_dir(path) and (path / KERAS_MARKER).is_file() else None

    def load(self, entry: Path, options: ExportOptions) -> LoadedModel:
        import_tensorflow()
        import tf_keras

        custom = import_custom_objects(options.custom_objects)
        try:
            with silenced_stderr():
                model = tf_keras.models.load_model(str(entry), custom_objects=custom or None, compile=False)
        except Exception as err:
            names = missing_classes(str(err))
            if names:
                raise missing_class_error(entry, names, "", options.custom_objects) from None
            raise FormatError(
                f"{entry}: tf_keras cannot load the Keras SavedModel: {specific_line(err)}",
                "re-save it with the tf_keras version that wrote it, or give its saved_model.pb with --format saved_model",
            ) from None
        signatures = read_signatures(entry, options.tags)
        if not signatures:  # e.g. saved with signatures=None: export from the Keras model itself
            return LoadedModel(self.name, model, keras_input_specs(model), keras_reference(model))
        # The SavedModel's own signatures are what it serves; keep them, names and all.
        loaded = SavedModelHandler().load(entry, options)
        loaded.format = self.name
        signature = signatures[loaded.saved_model.serving_signature]
        if _keras_matches(model, signature):
            loaded.reference = keras_reference(model)  # the source model through tf_keras itself
        return loaded

    def export(self, loaded: LoadedModel, export_dir: Path) -> None:
        if loaded.saved_model is not None:
            SavedModelHandler().export(loaded, export_dir)
        else:
            export_keras(loaded.model, export_dir)


def _keras_matches(model, signature) -> bool:
    """Whether calling the tf_keras model yields the signature's inputs and outputs under the same keys."""
    try:
        inputs = {spec.name for spec in keras_input_specs(model)}
        outputs = set(keras_output_names(model))
    except (FormatError, AttributeError, TypeError):  # a revived subclassed model without symbolic inputs
        return False
    return inputs == {s.name for s in signature.inputs} and outputs == {s.name for s in signature.outputs}
