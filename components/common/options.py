"""How a step's parameters are declared once: name, type, default and help.

Each step lists its parameters in `components/<step>/options.py` (TensorFlow-free and kfp-free). From that
one list come the command-line options (pipelines/cli/options.py), the pipelines' signatures
(pipelines/parameters.py) and the defaults of the step's logic; the component signatures, which KFP reads
from their source, and the README tables are proven to agree with it by tests/pipelines/test_options_source.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

REQUIRED: Any = ...  # the default of a parameter that has none


@dataclass(frozen=True)
class Option:
    name: str  # the parameter's name in the component, the pipelines and the logic
    type: type  # str, int, float, bool or list (a list of str)
    default: Any
    help: str  # one sentence or a few; the component docstring's `Args:` entry says the same
    flag: str = ""  # the command-line flag, default --name-with-dashes
    choices: tuple[str, ...] = ()
    metavar: str = ""
    uri: bool = False  # a path or URI: the command line makes a local path absolute
    repeat: bool = False  # a list given as a repeated flag (--feed A --feed B) rather than A,B
    positive: bool = False  # the command line refuses 0 and below

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def annotation(self) -> Any:
        return list[str] if self.type is list else self.type


class Options(Mapping[str, Option]):
    """A step's parameters in signature order; read-only, looked up by name."""

    def __init__(self, *options: Option):
        self._by_name = {o.name: o for o in options}
        if len(self._by_name) != len(options):
            raise ValueError("an option is declared twice")

    def __getitem__(self, name: str) -> Option:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def default(self, name: str) -> Any:
        """A default for a dataclass field or a keyword argument (a fresh list for list options)."""
        value = self._by_name[name].default
        return list(value) if isinstance(value, list) else value

    def only(self, *names: str) -> Options:
        return Options(*(self._by_name[n] for n in names))

    def without(self, *names: str) -> Options:
        missing = set(names) - set(self._by_name)
        if missing:
            raise KeyError(", ".join(sorted(missing)))
        return Options(*(o for o in self.values() if o.name not in names))

    def __add__(self, other: Options) -> Options:
        return Options(*self.values(), *(o for o in other.values() if o.name not in self))

    def pick(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The values these options name, for handing a pipeline's parameters to one step."""
        return {name: values[name] for name in self if name in values}
