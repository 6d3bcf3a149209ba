"""TF2 SavedModel directories."""

from __future__ import annotations

from pathlib import Path

from kfp_tfserving.components.common import serving_oracle
from kfp_tfserving.components.common.errors import FormatError
from kfp_tfserving.components.common.formats.base import ExportOptions, FormatHandler, LoadedModel
from kfp_tfserving.components.common.formats.callable_saved_model import export_callable, load_callable
from kfp_tfserving.components.common.formats.saved_model_edit import (
    copy_with_serving_default,
    is_tf1_meta_graph,
    pick_serving_signature,
)
from kfp_tfserving.components.common.formats.saved_model_io import (
    SERVING_DEFAULT,
    duplicate_asset_tensors,
    read_saved_model_proto,
    run_signature,
    serve_meta_graph,
    signatures_of,
    tag_set_text,
)
from kfp_tfserving.components.common.formats.saved_model_repair import resave, serving_problem
from kfp_tfserving.components.common.tfenv import import_tensorflow, silenced_stderr


def is_saved_model_dir(path: Path) -> bool:
    return path.is_dir() and ((path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file())


class SavedModelHandler(FormatHandler):
    name = "saved_model"
    description = "TF2 SavedModel directory"

    def detect(self, path: Path) -> Path | None:
        if (path / "tfhub_module.pb").is_file():
            return None  # a TF1 hub module: the hub handler serves its empty tag-set graph
        return path if is_saved_model_dir(path) else None

    def load(self, entry: Path, options: ExportOptions) -> LoadedModel:
        proto = read_saved_model_proto(entry)
        meta = serve_meta_graph(proto, entry, options.tags)
        signatures = signatures_of(meta)
        if signatures:
            serving = pick_serving_signature(sorted(signatures), options.signature, entry)
        tf = import_tensorflow()
        try:
            with silenced_stderr():  # several meta graphs ({train} + {serve}, ...): TF2 needs the tags
                source = tf.saved_model.load(str(entry), tags=list(options.tags))
        except Exception as err:
            raise FormatError(
                f"{entry}: TensorFlow cannot load its {tag_set_text(options.tags)} graph: {serving_oracle.specific_line(err)}",
                "check that the SavedModel directory is complete (variables/, assets/)",
            ) from None
        if not signatures:  # a TF2 hub-style module: serve its __call__
            return load_callable(self.name, entry, source)

        def reference(inputs):
            return run_signature(entry, inputs, serving, loaded=source)

        tf1 = is_tf1_meta_graph(meta)
        # A duplicated AssetFileDef fails the C++ load whatever else is right: the export drops it (and the
        # oracle then judges the export), a TF2 re-save is not the cure.
        problem = None if tf1 or duplicate_asset_tensors(meta) else serving_problem(entry, options.tags)
        return LoadedModel(
            self.name,
            source,
            signatures[serving].inputs,
            reference,
            extras={
                "entry": entry,
                "serving_signature": serving,
                "signatures": sorted(signatures),
                "tf1": tf1,
                "tags": options.tags,
                "repaired": f"re-saved from TF2's loader because {problem}" if problem else "",
            },
        )

    def export(self, loaded: LoadedModel, export_dir: Path) -> None:
        entry: Path = loaded.extras["entry"]
        if "callable" in loaded.extras:
            export_callable(loaded, export_dir)
            return
        if not loaded.extras["repaired"]:
            # Servable as it is: keep the original bytes, adding serving_default to the proto when absent.
            # Other meta graphs ({train}, {serve,gpu}, ...) stay as they are.
            tags = set(loaded.extras["tags"])
            copy_with_serving_default(entry, export_dir, loaded.extras["serving_signature"], tags, tags)
            return
        signatures = {name: name for name in loaded.extras["signatures"]}
        signatures[SERVING_DEFAULT] = loaded.extras["serving_signature"]
        # A re-save writes the served graph only: TF2's saver cannot carry the source's other meta graphs.
        resave(loaded.model, export_dir, signatures, methods_from=entry, tags=loaded.extras["tags"])
