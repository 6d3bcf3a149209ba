"""Roll a base path back to an earlier version: the newer versions are taken away, so TF Serving (which
serves the newest by default) returns to the target. Labels on removed versions move to the target first."""

from __future__ import annotations

from kfp_tfserving.components.common.errors import PublishError, UserError
from kfp_tfserving.components.common.storage import storage_for
from kfp_tfserving.components.push_to_serving import models_config as mc
from kfp_tfserving.components.push_to_serving.publisher import model_name_from_base_path
from kfp_tfserving.components.push_to_serving.versions import (
    inspect_version,
    numeric_versions,
    remove_version,
)


def rollback(
    base_path: str, to: int | None = None, *, models_config: str = "", model_name: str = ""
) -> tuple[int, list[int]]:
    """Returns (the version now newest, the versions removed)."""
    storage = storage_for(base_path)
    versions = numeric_versions(storage, base_path)
    if to is None:
        if len(versions) < 2:
            raise UserError(f"{base_path}: {len(versions)} version(s): nothing to roll back to")
        to = versions[-2]
    if to not in versions:
        raise UserError(f"{base_path}: no version {to}", f"published versions are {versions or 'none'}")
    newer = [v for v in versions if v > to]
    if not newer:
        raise UserError(f"{base_path}: version {to} is already the newest")
    info = inspect_version(storage, base_path, to)
    if not info.verified:
        raise PublishError(
            f"{base_path}/{to}: does not match its manifest ({info.problems[0]})",
            "roll back to a verified version (see `kfp-tfserving versions`)",
        )
    if models_config:
        name = model_name or model_name_from_base_path(base_path)
        kept = [v for v in versions if v <= to]
        mc.update(
            models_config,
            lambda c: mc.set_version(c, name, base_path, kept, relabel={v: to for v in newer}),
        )
    for number in sorted(newer, reverse=True):
        remove_version(storage, base_path, number)
    return to, newer
