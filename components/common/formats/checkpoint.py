"""TF1 checkpoints: a `.meta` graph plus `.index` and `.data-*` variable files sharing one prefix."""

from __future__ import annotations

import glob
import re
from pathlib import Path

from kfp_tfserving.components.common.errors import FormatError, message_line
from kfp_tfserving.components.common.formats.base import ExportOptions, FormatHandler, LoadedModel
from kfp_tfserving.components.common.formats.tf1_graph import strip_output_shapes
from kfp_tfserving.components.common.formats.tf1_plan import (
    export_plan,
    plan_graph,
    requested_outputs,
    session_reference,
)
from kfp_tfserving.components.common.saved_model.graph_nodes import node_name
from kfp_tfserving.components.common.tfenv import import_tensorflow, silenced_stderr

_STATE_PATH = re.compile(r'^model_checkpoint_path:\s*"(.*)"\s*$', re.MULTILINE)
_STEP = re.compile(r"-(\d+)$")
WHOLE_CHECKPOINT = "copy the whole checkpoint: the .meta, .index and .data-* files with the same prefix"


def _prefix(meta: Path) -> str:
    # An empty prefix (files named '.meta', '.index') gives 'dir/', which TF's reader accepts as is.
    return str(meta)[: -len(".meta")]


def _named_in_state_file(directory: Path) -> Path | None:
    """The `checkpoint` file's latest entry, by file name only: its paths are often another machine's."""
    state = directory / "checkpoint"
    if not state.is_file():
        return None
    match = _STATE_PATH.search(state.read_text(errors="replace"))
    if not match:
        return None
    name = re.split(r"[\\/]", match.group(1))[-1]
    meta = directory / f"{name}.meta"
    return meta if meta.is_file() else None


def _newest_meta(directory: Path) -> Path | None:
    metas = [p for p in directory.iterdir() if p.is_file() and p.name.endswith(".meta")]
    if not metas:
        return None
    named = _named_in_state_file(directory)
    if named is not None:
        return named

    def step(meta: Path) -> tuple[int, float]:
        found = _STEP.search(meta.name[: -len(".meta")])
        return (int(found.group(1)) if found else -1, meta.stat().st_mtime)

    return max(metas, key=step)


def read_meta_graph(entry: Path):
    """The checkpoint's MetaGraphDef, parsed only (nothing imported or run); FormatError when damaged."""
    import_tensorflow()
    from google.protobuf import message
    from tensorflow.core.protobuf import meta_graph_pb2

    meta = meta_graph_pb2.MetaGraphDef()
    try:
        meta.ParseFromString(entry.read_bytes())
    except message.DecodeError:
        raise FormatError(f"{entry}: not a TensorFlow MetaGraphDef", WHOLE_CHECKPOINT) from None
    if not meta.graph_def.node:
        raise FormatError(f"{entry}: the MetaGraphDef holds no graph", WHOLE_CHECKPOINT)
    strip_output_shapes(meta.graph_def)
    return meta


class CheckpointHandler(FormatHandler):
    name = "checkpoint"
    description = "TF1 checkpoint (.meta + .index + .data-*)"

    def detect(self, path: Path) -> Path | None:
        if path.is_file() and path.name.endswith(".meta"):
            return path
        if path.is_file() and path.name.endswith(".index"):
            meta = path.with_name(path.name[: -len(".index")] + ".meta")
            return meta if meta.is_file() else None
        return _newest_meta(path) if path.is_dir() else None

    def _check_files(self, entry: Path) -> None:
        prefix = _prefix(entry)
        index = Path(prefix + ".index")
        if not index.is_file():
            raise FormatError(
                f"{entry}: the checkpoint has no {index.name} next to its .meta", WHOLE_CHECKPOINT
            )
        if not list(index.parent.glob(glob.escape(index.name[: -len(".index")]) + ".data-*")):
            raise FormatError(
                f"{entry}: the checkpoint has no .data-* file next to its .meta", WHOLE_CHECKPOINT
            )

    def load(self, entry: Path, options: ExportOptions) -> LoadedModel:
        self._check_files(entry)
        meta = read_meta_graph(entry)
        tf = import_tensorflow()
        v1 = tf.compat.v1
        graph = tf.Graph()
        try:
            with graph.as_default(), silenced_stderr():
                saver = v1.train.import_meta_graph(meta, clear_devices=True) or v1.train.Saver(
                    allow_empty=True
                )
                session = v1.Session(graph=graph)
                saver.restore(session, _prefix(entry))
        except Exception as err:
            raise FormatError(
                f"{entry}: cannot restore the checkpoint: {message_line(err)}",
                WHOLE_CHECKPOINT,
            ) from None
        outputs = requested_outputs(meta.graph_def, options, entry)
        # Freezing keeps only what the outputs need: no training, saver or gradient ops reach the servable.
        with graph.as_default(), silenced_stderr():
            frozen = v1.graph_util.convert_variables_to_constants(
                session, graph.as_graph_def(), sorted({node_name(n) for n in outputs})
            )
        plan = plan_graph(frozen, outputs, options, entry)
        print(
            f"serving inputs {[t.key for t in plan.inputs]} -> outputs {[t.key for t in plan.outputs]}",
            flush=True,
        )
        return LoadedModel(self.name, frozen, plan.input_specs(), session_reference(session, plan), plan=plan)

    def export(self, loaded: LoadedModel, export_dir: Path) -> None:
        export_plan(loaded.plan, export_dir)
