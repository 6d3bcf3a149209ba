"""ServingPusher's execution parameters: the export, check and push steps' own options (one source,
components/<step>/options.py), so a setting means the same thing in KFP, on the command line and in TFX.

Options the steps share (`tags`, `sample_uri`) are one parameter, handed to every step that declares it, as in
the KFP chain.
"""

from __future__ import annotations

import json
from typing import Any

from kfp_tfserving.components.check_signatures.options import CHECK_OPTIONS
from kfp_tfserving.components.common.options import Option, Options
from kfp_tfserving.components.export_savedmodel.options import EXPORT_OPTIONS
from kfp_tfserving.components.push_to_serving.options import PUSH_OPTIONS

STEP_OPTIONS: dict[str, Options] = {
    "export_savedmodel": EXPORT_OPTIONS,
    "check_signatures": CHECK_OPTIONS,
    "push_to_serving": PUSH_OPTIONS,
}
SERVING_PUSHER = EXPORT_OPTIONS + CHECK_OPTIONS + PUSH_OPTIONS  # `+` keeps one `tags`, one `sample_uri`


def tfx_type(option: Option) -> Any:
    """The ExecutionParameter type TFX stores it as: ML Metadata has no bool (an int 0/1 instead)."""
    return int if option.type is bool else option.annotation


def _value(option: Option, value: Any) -> Any:
    if value is None:
        return SERVING_PUSHER.default(option.name)
    if option.type is bool:
        return bool(int(value))
    if option.type is list:  # TFX hands non-primitive parameters over as JSON
        return json.loads(value) if isinstance(value, str) else list(value)
    return option.type(value)


def resolve(exec_properties: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per step, the keyword arguments of its logic call: the value given, else the option's default."""
    values = {name: _value(o, exec_properties.get(name)) for name, o in SERVING_PUSHER.items()}
    out = {step: options.pick(values) for step, options in STEP_OPTIONS.items()}
    return out
