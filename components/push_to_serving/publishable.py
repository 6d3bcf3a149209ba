"""What push itself checks before publishing: the SavedModel TF Serving would load is all there.

The push step and `kfp-tfserving push` are used without the check step in front of them, so a truncated
saved_model.pb, a model without a {serve} graph or serving_default, or variables whose data files are
missing must not become a version. The full check (signatures, ops, a run) remains the check step's job.
"""

from __future__ import annotations

import re
from pathlib import Path

from kfp_tfserving.components.common.errors import FormatError, PublishError
from kfp_tfserving.components.common.saved_model.proto import (
    SERVING_DEFAULT,
    has_variables,
    meta_graph,
    read_saved_model_proto,
)
from kfp_tfserving.components.common.saved_model.tags import SERVE, Tags, tag_set_text

_DATA_FILE = re.compile(r"variables\.data-(\d+)-of-(\d+)")
_FIX = "push a complete SavedModel (the export step's output, or tf.saved_model.save's directory)"


def _check_variables(model_dir: Path, meta) -> None:
    variables = model_dir / "variables"
    index = variables / "variables.index"
    if not index.is_file():
        if has_variables(meta):
            raise PublishError(
                f"{model_dir}: the graph has variables but variables/variables.index is missing", _FIX
            )
        return
    shards = {m.groups() for m in map(_DATA_FILE.fullmatch, (p.name for p in variables.iterdir())) if m}
    counts = {int(total) for _, total in shards}
    if not shards:
        if has_variables(meta):
            raise PublishError(f"{variables}: variables.index is there but no variables.data-* file", _FIX)
        return
    if len(counts) != 1:
        raise PublishError(f"{variables}: variables.data-* files of different checkpoints are mixed", _FIX)
    total = counts.pop()
    present = {int(n) for n, _ in shards}
    missing = sorted(set(range(total)) - present)
    if missing:
        raise PublishError(
            f"{variables}: variables.data-{missing[0]:05d}-of-{total:05d} is missing"
            + (f" (and {len(missing) - 1} more shard(s))" if len(missing) > 1 else ""),
            _FIX,
        )


def check_publishable(model_dir: Path, tags: Tags = SERVE) -> None:
    """PublishError (one line) unless saved_model.pb parses, has the `tags` graph (TF Serving's
    --saved_model_tags) with serving_default, and the variables it needs are present."""
    pb = model_dir / "saved_model.pb"
    try:
        if not pb.is_file():  # a saved_model.pbtxt alone is not what TF Serving loads
            raise FormatError(f"{pb}: not a valid SavedModel proto (FileNotFoundError)")
        serve = meta_graph(read_saved_model_proto(model_dir), pb, tags)
    except FormatError as err:
        raise PublishError(err.what, _FIX) from None
    signatures = sorted(key for key in serve.signature_def if not key.startswith("__"))
    if SERVING_DEFAULT not in signatures:
        raise PublishError(
            f"{pb}: the {tag_set_text(tags)} graph has no {SERVING_DEFAULT} signature (has {signatures})",
            "export it through the export step, which adds serving_default",
        )
    _check_variables(model_dir, serve)
