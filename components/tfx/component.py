"""ServingPusher: a TFX component (ComponentSpec + executor) publishing a TFX Model as a TF Serving version."""

from __future__ import annotations

from typing import Any

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.types.system_executions import Deploy

from kfp_tfserving.components.tfx import parameters
from kfp_tfserving.components.tfx.executor import Executor


def _spec_parameters() -> dict[str, ExecutionParameter]:
    steps = {
        name: ExecutionParameter(type=parameters.tfx_type(option), optional=True)
        for name, option in parameters.SERVING_PUSHER.items()
    }
    # Pusher's own destination, so a pipeline swapping Pusher for ServingPusher keeps its settings.
    steps[standard_component_specs.PUSH_DESTINATION_KEY] = ExecutionParameter(
        type=pusher_pb2.PushDestination, optional=True
    )
    return steps


class ServingPusherSpec(types.ComponentSpec):
    """Pusher's inputs and output plus InfraValidator's (`blessing`, carrying this project's report);
    parameters: the steps' own options."""

    PARAMETERS = _spec_parameters()
    INPUTS = {
        standard_component_specs.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        standard_component_specs.MODEL_BLESSING_KEY: ChannelParameter(
            type=standard_artifacts.ModelBlessing, optional=True
        ),
        standard_component_specs.INFRA_BLESSING_KEY: ChannelParameter(
            type=standard_artifacts.InfraBlessing, optional=True
        ),
    }
    OUTPUTS = {
        standard_component_specs.PUSHED_MODEL_KEY: ChannelParameter(type=standard_artifacts.PushedModel),
        # An InfraBlessing rather than a type of this project's: TFX's KFP v2 container imports a custom
        # artifact type by its schema title (`module.Class`, one dot), which a package's class cannot be.
        standard_component_specs.BLESSING_KEY: ChannelParameter(type=standard_artifacts.InfraBlessing),
    }
    TYPE_ANNOTATION = Deploy


class ServingPusher(base_component.BaseComponent):
    """Export → check → publish a TFX Model as `<base_path>/<version>/`, in place of InfraValidator + Pusher.

    The verdict comes from the serving oracle (TF Serving's own C++ loader), so no model server is needed.
    A failed check ends the run with the finding's one line and nothing is published; a `model_blessing`
    or `infra_blessing` that is not blessed skips the push (`pushed: 0`), as Pusher does.

    Outputs: `pushed_model` (TFX PushedModel: `pushed` 1 when the version is in place, also when the same
    model already was the newest version; `pushed_destination`, `pushed_version`) and `blessing` (TFX
    InfraBlessing, `blessed` 1, holding the check report, the measured batching_params.pbtxt and the push
    report, with the figures as custom properties).
    """

    SPEC_CLASS = ServingPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        base_path: str | None = None,
        push_destination: pusher_pb2.PushDestination | None = None,
        model_blessing: types.BaseChannel | None = None,
        infra_blessing: types.BaseChannel | None = None,
        **step_parameters: Any,
    ):
        """Args:
        model: A TFX Model artifact (a Trainer's `Format-Serving/`, or the older `serving_model_dir/`).
        base_path: TF Serving's model base path (local, gs:// or s3://); or give Pusher's
            `push_destination` (filesystem), whose UNIX_TIMESTAMP versioning maps to `version_policy`
            `timestamp`.
        model_blessing: Evaluator's blessing; an unblessed model is not pushed.
        infra_blessing: InfraValidator's blessing, if the pipeline still has one.
        **step_parameters: Any parameter of the export, check and push steps (see the component README).
        """
        unknown = sorted(set(step_parameters) - set(parameters.SERVING_PUSHER))
        if unknown:
            raise TypeError(f"ServingPusher: unknown parameter(s) {', '.join(unknown)}")
        if bool(base_path) == bool(push_destination):
            raise ValueError("ServingPusher: give exactly one of base_path and push_destination")
        values = {
            name: int(value) if isinstance(value, bool) else value
            for name, value in step_parameters.items()
            if value is not None
        }
        if push_destination is not None:
            if push_destination.WhichOneof("destination") != "filesystem":
                raise ValueError("ServingPusher: push_destination must be a filesystem destination")
            values.setdefault("version_policy", "timestamp")
        spec = ServingPusherSpec(
            model=model,
            model_blessing=model_blessing,
            infra_blessing=infra_blessing,
            push_destination=push_destination,
            base_path=base_path,
            pushed_model=types.Channel(type=standard_artifacts.PushedModel),
            blessing=types.Channel(type=standard_artifacts.InfraBlessing),
            **values,
        )
        super().__init__(spec=spec)
