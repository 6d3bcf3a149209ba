"""TF1 frozen GraphDef files (`.pb`, or text `.pbtxt`): weights baked in as constants."""

from __future__ import annotations

from pathlib import Path

from kfp_tfserving.components.common.formats.base import ExportOptions, FormatHandler, LoadedModel
from kfp_tfserving.components.common.formats.tf1_graph import import_graph, read_graph_def
from kfp_tfserving.components.common.formats.tf1_plan import (
    export_plan,
    plan_graph,
    requested_outputs,
    session_reference,
)
from kfp_tfserving.components.common.tfenv import import_tensorflow

# Protobuf files that belong to other formats' directories.
_OTHER_FORMATS_FILES = {"saved_model.pb", "saved_model.pbtxt", "tfhub_module.pb", "keras_metadata.pb"}
GRAPH_SUFFIXES = (".pb", ".pbtxt", ".graphdef")


class FrozenGraphHandler(FormatHandler):
    name = "frozen_graph"
    description = "TF1 frozen GraphDef (.pb)"

    def detect(self, path: Path) -> Path | None:
        if path.is_file() and path.suffix in GRAPH_SUFFIXES and path.name not in _OTHER_FORMATS_FILES:
            return path
        return None

    def load(self, entry: Path, options: ExportOptions) -> LoadedModel:
        graph_def = read_graph_def(entry)
        plan = plan_graph(graph_def, requested_outputs(graph_def, options, entry), options, entry)
        tf = import_tensorflow()
        session = tf.compat.v1.Session(graph=import_graph(graph_def, entry))
        print(
            f"serving inputs {[t.key for t in plan.inputs]} -> outputs {[t.key for t in plan.outputs]}",
            flush=True,
        )
        return LoadedModel(
            self.name, graph_def, plan.input_specs(), session_reference(session, plan), plan=plan
        )

    def export(self, loaded: LoadedModel, export_dir: Path) -> None:
        export_plan(loaded.plan, export_dir)
