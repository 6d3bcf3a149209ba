"""The TFX component's execution parameters: the KFP steps' own parameters, defaults written once.

Each step's KFP wrapper (component.py) holds its parameters' names, types and defaults; the TFX component
exposes the same ones (artifacts left out) so a setting means the same thing in both worlds. A name two
steps share (`sample_uri`) goes to both.
"""

from __future__ import annotations

import inspect
import json
import typing
from dataclasses import dataclass
from typing import Any

STEPS = ("export_savedmodel", "check_signatures", "push_to_serving")
# Set by the TFX component itself rather than by a parameter: the model comes from the input artifact,
# and the check's tag-set is the export's (`tags`).
_NOT_PARAMETERS = {"saved_model_tags"}


@dataclass(frozen=True)
class Parameter:
    name: str
    type: Any  # str, int, float, bool or list[str]
    default: Any
    steps: tuple[str, ...]


def _step_function(step: str):
    import importlib

    module = importlib.import_module(f"kfp_tfserving.components.{step}.component")
    return getattr(module, step).python_func


def step_parameters() -> dict[str, Parameter]:
    """Every step's plain parameters, in the steps' order."""
    found: dict[str, Parameter] = {}
    for step in STEPS:
        func = _step_function(step)
        hints = typing.get_type_hints(func)
        for name, param in inspect.signature(func).parameters.items():
            kind = hints.get(name)
            if name in _NOT_PARAMETERS or kind not in (str, int, float, bool, list[str]):
                continue  # Input[...] / Output[...] artifacts
            default = None if param.default is inspect.Parameter.empty else param.default
            if name in found:
                found[name] = Parameter(name, kind, found[name].default, (*found[name].steps, step))
            else:
                found[name] = Parameter(name, kind, default, (step,))
    return found


def tfx_type(parameter: Parameter) -> Any:
    """The ExecutionParameter type TFX stores it as: ML Metadata has no bool, lists travel as JSON."""
    if parameter.type is bool:
        return int
    if parameter.type == list[str]:
        return list[str]
    return parameter.type


def resolve(exec_properties: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per step, the keyword arguments of its logic call: the given value, else the step's default."""
    out: dict[str, dict[str, Any]] = {step: {} for step in STEPS}
    for parameter in step_parameters().values():
        value = exec_properties.get(parameter.name)
        if value is None:
            value = parameter.default
        elif parameter.type is bool:
            value = bool(int(value))
        elif parameter.type == list[str] and isinstance(value, str):
            value = json.loads(value) if value.strip().startswith("[") else [value]
        elif parameter.type in (int, float, str):
            value = parameter.type(value)
        for step in parameter.steps:
            out[step][parameter.name] = value
    return out
