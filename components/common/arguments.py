"""Arguments checked before any work starts: by the CLI, and by each step's logic in a pipeline run.

Each check raises a UserError naming the argument, what is wrong and what to give instead.
"""

from __future__ import annotations

import re
from pathlib import Path

from kfp_tfserving.components.common.errors import UserError

# TF Serving parses version directory names as int64; 0 is not a version it loads.
MAX_VERSION = 2**63 - 1
# Names TF Serving's REST paths (/v1/models/<name>) and models.config can address.
_MODEL_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")


def check_version(version: int, policy: str = "explicit") -> None:
    """An explicit version must be 1 … 2^63−1; other policies ignore it, but not a negative or huge one."""
    if policy == "explicit" and version <= 0:
        raise UserError(
            f"version policy 'explicit' needs a positive --version (got {version})",
            f"give a number from 1 to {MAX_VERSION}",
        )
    if not 0 <= version <= MAX_VERSION:
        raise UserError(
            f"--version {version}: outside 1 … {MAX_VERSION}",
            "TF Serving reads version directories as 64-bit integers; give a number in that range",
        )


def check_model_name(name: str, derived: bool = False) -> None:
    if _MODEL_NAME.fullmatch(name):
        return
    allowed = "letters, digits, '_', '-' and '.', not starting with a dot"
    if derived:
        raise UserError(
            f"the model name '{name}' (the base path's last segment) is not a name TF Serving can serve",
            f"give --model-name using {allowed}",
        )
    raise UserError(f"--model-name '{name}': not a name TF Serving can serve", f"use {allowed}")


def check_base_path(base_path: str) -> None:
    """Not empty; on a local path, neither a regular file nor below one."""
    if not base_path.strip():
        raise UserError("--base-path is empty", "give the model base path that holds the version directories")
    if "://" in base_path and not base_path.startswith("file://"):
        return
    path = Path(base_path.removeprefix("file://")).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(
            f"--base-path {base_path}: is a file, not a directory",
            "give a directory (it is created when missing)",
        )
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise UserError(
                f"--base-path {base_path}: {parent} is a file, so nothing can be created below it",
                "give a path under a directory",
            )
        if parent.exists():
            break


def model_name_for(base_path: str, model_name: str = "") -> str:
    """The served name: the one given, else the base path's last segment."""
    return model_name or base_path.rstrip("/").split("/")[-1] or "model"


def check_publish_arguments(base_path: str, model_name: str, policy: str, version: int) -> None:
    """Everything about where and under which name a version is published."""
    check_base_path(base_path)
    check_model_name(model_name_for(base_path, model_name), derived=not model_name)
    check_version(version, policy)
