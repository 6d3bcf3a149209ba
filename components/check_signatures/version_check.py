"""Check 10: the TensorFlow that wrote the model against the TensorFlow of the model server."""

from __future__ import annotations

import re

from kfp_tfserving.components.check_signatures.findings import ERROR, WARNING, Finding
from kfp_tfserving.components.common.errors import UserError

_VERSION = re.compile(r"^\s*(\d+)\.(\d+)")


def parse_version(text: str) -> tuple[int, int] | None:
    """(major, minor) of a TensorFlow version string such as '2.21.0' or '2.22.0-rc1'; None if unparsable."""
    match = _VERSION.match(text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def installed_tf_version() -> str:
    """The installed TensorFlow's version, from its distribution's metadata: the static checks then need
    no TensorFlow import (a model they reject is rejected without paying for it)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tensorflow")
    except PackageNotFoundError:  # a TensorFlow built from source and not pip-installed
        from kfp_tfserving.components.common.tf_c_api import version as library_version

        return library_version()


def validate_target(serving_tf_version: str) -> None:
    """Refuse a malformed --serving-tf-version before any work starts."""
    if serving_tf_version and parse_version(serving_tf_version) is None:
        raise UserError(
            f"--serving-tf-version '{serving_tf_version}': not a TensorFlow version",
            "give MAJOR.MINOR[.PATCH], e.g. 2.21",
        )


def target_version(serving_tf_version: str) -> str:
    """The model server's TensorFlow version: the given one, else the installed TensorFlow's."""
    validate_target(serving_tf_version)
    return serving_tf_version or installed_tf_version()


def check_version(view) -> list[Finding]:
    if view.serve is None:
        return []
    produced = view.serve.meta_info_def.tensorflow_version
    target = view.serving_tf_version
    if parse_version(produced) is None:
        return [
            Finding(
                "version-skew",
                WARNING,
                f"the model does not record which TensorFlow wrote it ('{produced}'); skew against {target} "
                "cannot be checked",
                "re-export with a recent TensorFlow, which records its version",
            )
        ]
    if parse_version(produced) > parse_version(target):
        return [
            Finding(
                "version-skew",
                ERROR,
                f"written by TensorFlow {produced}, newer than the model server's {target}: its ops or "
                "attributes may be unknown to the server",
                f"export with TensorFlow {'.'.join(map(str, parse_version(target)))} or older, or upgrade "
                "the model server",
            )
        ]
    return []
