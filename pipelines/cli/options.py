"""Command-line options made from the steps' options (components/<step>/options.py): the flag, its type,
default and help come from the one declaration, and `from_command_line` turns the parsed values back into
the parameters the steps and pipelines take."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from kfp_tfserving.components.common.options import Option, Options


def _click_option(option: Option, *aliases: str) -> Callable:
    kwargs: dict[str, Any] = {"help": option.help}
    flags = [option.cli_flag, *aliases]
    if option.type is bool and option.default is True:  # --batching-params/--no-batching-params
        flags = [f"{option.cli_flag}/--no-{option.cli_flag[2:]}"]
        kwargs.update(default=True)
    elif option.type is bool:
        kwargs.update(is_flag=True, default=False)
    elif option.type is list and option.repeat:
        kwargs.update(multiple=True, default=())
    elif option.type is list:  # A,B on the command line
        kwargs.update(default="", metavar="A,B")
    elif option.required:
        kwargs.update(required=True)
    else:
        kwargs.update(default=option.default, show_default=option.default not in ("", 0))
        if option.choices:
            kwargs["type"] = click.Choice(option.choices)
        elif option.positive:
            positive = click.FloatRange(min=0, min_open=True) if option.type is float else click.IntRange(1)
            kwargs["type"] = positive
        else:
            kwargs["type"] = option.type
    if option.metavar:
        kwargs["metavar"] = option.metavar
    return click.option(*flags, option.name, **kwargs)


def cli_options(options: Options, **aliases: str) -> Callable[[Callable], Callable]:
    """Decorate a click command with one option per step option, in declaration order; `aliases` gives an
    option a second flag (tags="--saved-model-tags")."""

    def decorate(command: Callable) -> Callable:
        for option in reversed(list(options.values())):
            extra = (aliases[option.name],) if option.name in aliases else ()
            command = _click_option(option, *extra)(command)
        return command

    return decorate


def absolute(uri: str) -> str:
    """A local path made absolute (the steps run in other directories); a URI as given."""
    return uri if "://" in uri else str(Path(uri).expanduser().resolve())


def from_command_line(options: Options, given: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters as the steps take them: lists from `A,B` or repeated flags, local paths absolute."""
    values: dict[str, Any] = {}
    for name, option in options.items():
        value = given[name]
        if option.type is list:
            if option.repeat:
                value = list(value)
            else:
                value = [item.strip() for item in value.split(",") if item.strip()]
        elif option.uri and value:
            value = absolute(value)
        values[name] = value
    return values
