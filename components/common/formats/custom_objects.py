"""Python-defined Keras classes: import the user's module before loading, and say which class is missing.

A layer decorated with `@keras.saving.register_keras_serializable` deserializes once its module has been
imported (the decorator registers it); `--custom-objects MODULE:NAME,...` also hands named classes that are
not registered to the loader. Loading stays in safe mode: a Lambda layer still needs
--allow-unsafe-deserialization. The export traces the layers into graph ops, so the published version
needs none of this Python code: TF Serving has none.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
from pathlib import Path
from typing import Any

from kfp_tfserving.components.common.errors import FormatError, UserError, message_line

_MODULE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
_NAME = re.compile(r"^[A-Za-z_][\w]*$")
# Keras 3 ("Could not locate class 'Scale'") and Keras 2 / legacy h5 ("Unknown layer: 'pkg>Scale'").
_MISSING = (
    re.compile(r"Could not locate (?:class|function) '([^']+)'"),
    re.compile(
        r"Unknown (?:layer|object|class|activation|initializer|regularizer|constraint)[^:']*: '([^']+)'"
    ),
)
IMPORTABLE = (
    "the module must be importable where the export step runs (installed in its image, or on PYTHONPATH)"
)


def parse_custom_objects(items: list[str]) -> list[tuple[str, list[str]]]:
    """`MODULE[:NAME,...]` items as (module, names); UserError on a malformed item."""
    parsed = []
    for item in items:
        module, _, names_text = item.strip().partition(":")
        names = [n.strip() for n in names_text.split(",") if n.strip()]
        if not _MODULE.match(module) or any(not _NAME.match(n) for n in names):
            raise UserError(
                f"--custom-objects '{item}': expected MODULE[:NAME,...]",
                "for example --custom-objects my_layers or --custom-objects my_layers:Scale,Gate",
            )
        parsed.append((module, names))
    return parsed


def import_custom_objects(items: list[str]) -> dict[str, Any]:
    """Import every module (running its registration decorators); the named classes by name for the loader."""
    objects: dict[str, Any] = {}
    for module_name, names in parse_custom_objects(items):
        try:
            module = importlib.import_module(module_name)
        except Exception as err:  # ImportError, or the module's own code failing
            raise UserError(
                f"--custom-objects {module_name}: cannot import it ({type(err).__name__}: "
                f"{message_line(err)})",
                IMPORTABLE,
            ) from None
        print(f"imported {module_name} for its Keras classes", flush=True)
        for name in names:
            if not hasattr(module, name):
                raise UserError(
                    f"--custom-objects {module_name}:{name}: the module has no '{name}'",
                    "name classes the module defines, or give the module alone if they are registered",
                )
            obj = getattr(module, name)
            objects[name] = obj
            registered = _registered_name(obj)
            if registered:
                objects[registered] = obj
    return objects


def _registered_name(obj: Any) -> str:
    try:
        import keras

        return keras.saving.get_registered_name(obj)
    except Exception:  # not a class Keras can name; the plain name is enough
        return ""


def missing_classes(error_text: str) -> list[str]:
    """Class names a Keras load error says it could not find, in order, without repeats."""
    found: list[str] = []
    for pattern in _MISSING:
        for name in pattern.findall(error_text):
            if name not in found:
                found.append(name)
    return found


def modules_defining(config_text: str, names: list[str]) -> list[str]:
    """The `module` the saved config records for each missing class (Keras 3 configs carry it)."""
    wanted = set(names) | {n.split(">")[-1] for n in names}
    modules: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            named = {node.get("class_name"), node.get("registered_name")} & wanted
            module = node.get("module")
            if named and isinstance(module, str) and not module.startswith("keras") and module not in modules:
                modules.append(module)
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    with contextlib.suppress(ValueError, TypeError):  # no readable config: the fix names MODULE
        visit(json.loads(config_text))
    return modules


def missing_class_error(entry: Path, names: list[str], config_text: str, given: list[str]) -> FormatError:
    """One line: which classes are missing and how to provide them."""
    modules = modules_defining(config_text, names)
    quoted = ", ".join(f"'{n}'" for n in names)
    what = (
        f"{entry}: the model uses Python-defined class{'es' if len(names) > 1 else ''} {quoted} that "
        f"Keras cannot find (Could not locate class '{names[0].split('>')[-1]}')"
    )
    if given:
        fix = (
            f"--custom-objects {' '.join(given)} did not provide {'them' if len(names) > 1 else 'it'}: "
            "import the module that defines and registers the class, or name it as MODULE:NAME"
        )
    else:
        module = modules[0] if modules else "MODULE"
        fix = (
            f"pass --custom-objects {module} (the module that defines it, decorated with "
            f"@keras.saving.register_keras_serializable, or {module}:ClassName); {IMPORTABLE}"
        )
    return FormatError(what, fix)
