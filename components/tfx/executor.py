"""ServingPusher's executor: TFX's Pusher executor with this project's export → check → publish as the push.

Pusher's own pieces are reused as they are: the blessing check, the model path (`Format-Serving/` or the
older layout, by TFX's path utils), the archive copy into the PushedModel's URI and the custom properties
it sets. What differs is the push itself: the export step's logic makes the SavedModel TF Serving loads,
the check step's logic predicts TF Serving's verdict through the serving oracle, the push step's logic
publishes atomically under the version policy.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from kfp_tfserving.components.common.errors import ERROR_MARKER, UserError
from kfp_tfserving.components.tfx import parameters

BLESSED_FILE = "INFRA_BLESSED"  # what InfraValidator writes into a blessing it grants
CHECK_REPORT_MD = "check_report.md"
CHECK_REPORT_JSON = "check_report.json"
PUSH_REPORT_MD = "push_report.md"


class _Metrics:
    """What the check step logs as KFP metrics, kept for the report's custom properties."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def log_metric(self, name: str, value: float) -> None:
        self.values[name] = value


def _base_path(exec_properties: dict[str, Any]) -> str:
    raw = exec_properties.get(standard_component_specs.PUSH_DESTINATION_KEY)
    if raw:
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(raw, destination)
        return destination.filesystem.base_directory
    return exec_properties.get("base_path") or ""


class Executor(pusher_executor.Executor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        pushed = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        report = artifact_utils.get_single_instance(output_dict[standard_component_specs.BLESSING_KEY])
        # Pusher warns about a push "without validation" when no blessing comes in; this push validates.
        blessings = (standard_component_specs.MODEL_BLESSING_KEY, standard_component_specs.INFRA_BLESSING_KEY)
        if any(input_dict.get(key) for key in blessings) and not self.CheckBlessing(input_dict):
            self._MarkNotPushed(pushed)
            report.set_int_custom_property("blessed", 0)
            report.set_string_custom_property("push_outcome", "not blessed upstream: nothing published")
            return
        model_uri = self.GetModelPath(input_dict)
        base_path = _base_path(exec_properties)
        try:
            with tempfile.TemporaryDirectory(prefix="kfp-tfserving-tfx-") as work:
                report_dir = Path(work) / "report"
                try:
                    checked, result = _export_check_publish(
                        model_uri, base_path, exec_properties, Path(work), report_dir, report
                    )
                finally:  # a failed check's report is kept too (TFX does not publish a failed run's outputs)
                    if report_dir.is_dir():
                        io_utils.copy_dir(str(report_dir), report.uri)
                # Pusher archives what it pushed in the PushedModel's URI; so does this.
                io_utils.copy_dir(str(checked), pushed.uri)
        except UserError as err:
            # The run ends with the one line (TFX shows the exception), marked for `find_error_line` too.
            print(f"{ERROR_MARKER}{err.one_line()}", file=sys.stderr, flush=True)
            raise
        report.set_int_custom_property("blessed", 1)
        self._MarkPushed(pushed, pushed_destination=result.destination, pushed_version=str(result.version))


def _local_model(model_uri: str, work: Path) -> tuple[Path, dict[str, Any]]:
    """The model on this machine: a local path as it is, a remote one fetched by the load step's logic."""
    if "://" not in model_uri:
        return Path(model_uri), {"source_uri": model_uri}
    from kfp_tfserving.components.load_model.loader import load_source

    metadata: dict[str, Any] = {}
    load_source(model_uri, work / "loaded", metadata)
    return work / "loaded", metadata


def _export_check_publish(
    model_uri: str,
    base_path: str,
    exec_properties: dict[str, Any],
    work: Path,
    report_dir: Path,
    report: types.Artifact,
):
    from kfp_tfserving.components.check_signatures.check_step import check_step
    from kfp_tfserving.components.export_savedmodel.exporter import export_model
    from kfp_tfserving.components.push_to_serving.publisher import PushOptions, push_step

    if not base_path:
        raise UserError("ServingPusher has no base path", "give base_path or push_destination")
    args = parameters.resolve(exec_properties)
    exported, checked = work / "exported", work / "checked"
    report_dir.mkdir(parents=True, exist_ok=True)

    model_dir, model_metadata = _local_model(model_uri, work)
    export_metadata: dict[str, Any] = {}
    export_model(model_dir, model_metadata, exported, export_metadata, **args["export_savedmodel"])

    metrics = _Metrics()
    checked_metadata: dict[str, Any] = {}
    try:
        check_step(
            exported,
            export_metadata,
            checked,
            checked_metadata,
            report_dir / CHECK_REPORT_MD,
            metrics,
            **args["check_signatures"],
        )
    finally:
        report.set_int_custom_property("check_passed", int(bool(checked_metadata)))
        for name, value in metrics.values.items():
            report.set_float_custom_property(name, float(value))
    (report_dir / CHECK_REPORT_JSON).write_text(json.dumps(checked_metadata["check_report"], indent=1))
    (report_dir / BLESSED_FILE).touch()
    _record_batching(checked, checked_metadata["check_report"], report_dir, report)

    push_args = dict(args["push_to_serving"])
    push_args.pop("base_path", None)
    pushed_metadata: dict[str, Any] = {}
    result = push_step(
        checked,
        checked_metadata,
        pushed_metadata,
        base_path,
        PushOptions(**push_args),
        report_dir / PUSH_REPORT_MD,
    )
    for key in ("push_outcome", "model_fingerprint", "content_digest", "base_path", "model_name"):
        report.set_string_custom_property(key, str(pushed_metadata.get(key, "")))
    return checked, result


def _record_batching(checked: Path, check_report: dict, report_dir: Path, report: types.Artifact) -> None:
    """The batching decision as properties: `batching_params` (the written file's text, '' when none) and
    `batching_verdict` (what was written, or why nothing was); the file itself beside the reports."""
    from kfp_tfserving.components.check_signatures.batching_params import BATCHING_PARAMS_FILE
    from kfp_tfserving.components.check_signatures.batching_report import verdict

    path = checked / BATCHING_PARAMS_FILE
    report.set_string_custom_property("batching_params", path.read_text() if path.is_file() else "")
    if path.is_file():
        shutil.copy2(path, report_dir / BATCHING_PARAMS_FILE)
    batching = check_report.get("runtime", {}).get("batching")
    if batching:
        report.set_string_custom_property("batching_verdict", verdict(batching))
