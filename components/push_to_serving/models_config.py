"""TF Serving's models.config (a ModelServerConfig text proto): the model entry, its version policy, labels.

TF Serving's rules, followed here: a model is added to the config only once its first version is published;
a label only points to a version that is published and that the version policy serves (by default TF
Serving refuses labels for versions it has not loaded, see `--allow_version_labels_for_unavailable_models`).
So with labels the policy is `specific` over every labelled version plus the newest one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from kfp_tfserving.components.common.errors import PublishError, UserError
from kfp_tfserving.components.common.storage import Storage, storage_for
from kfp_tfserving.components.common.storage.local import local_path

LABEL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def load(storage: Storage, uri: str) -> model_server_config_pb2.ModelServerConfig:
    config = model_server_config_pb2.ModelServerConfig()
    if not storage.exists(uri):
        return config
    text = storage.read_bytes(uri).decode()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as err:
        raise UserError(
            f"{uri}: not a valid ModelServerConfig text proto ({err})", "fix or remove the file"
        ) from None
    if config.HasField("custom_model_config"):
        raise UserError(f"{uri}: uses custom_model_config", "only model_config_list is supported")
    return config


def dump(config: model_server_config_pb2.ModelServerConfig) -> str:
    return text_format.MessageToString(config)


def find_entry(config, name: str):
    for entry in config.model_config_list.config:
        if entry.name == name:
            return entry
    return None


def labels_of(config, name: str) -> dict[str, int]:
    entry = find_entry(config, name)
    return dict(entry.version_labels) if entry is not None else {}


def check_label(label: str) -> None:
    if not LABEL_RE.match(label):
        raise UserError(
            f"version label '{label}' is not valid", "use letters, digits, '-' or '_', starting with a letter"
        )


def set_version(
    config,
    name: str,
    base_path: str,
    published: list[int],
    label: str = "",
    relabel: dict[int, int] | None = None,
) -> None:
    """Add or update the model's entry for its published versions; optionally point `label` at the newest.

    `relabel` maps versions being taken away to the version their labels should move to (rollback).
    """
    if not published:
        raise PublishError(f"{base_path}: no published version", "publish a version before configuring it")
    newest = max(published)
    entry = find_entry(config, name)
    if entry is None:
        entry = config.model_config_list.config.add(
            name=name, base_path=base_path, model_platform="tensorflow"
        )
    elif entry.base_path.rstrip("/") != base_path.rstrip("/"):
        raise PublishError(
            f"models.config: model '{name}' has base_path {entry.base_path}, not {base_path}",
            "use another --model-name or fix the config",
        )
    for key, value in list(entry.version_labels.items()):
        moved = (relabel or {}).get(value, value)
        if moved not in published:
            raise PublishError(
                f"models.config: label '{key}' of '{name}' points to version {value}, which is not published",
                "point it at a published version",
            )
        entry.version_labels[key] = moved
    if label:
        check_label(label)
        entry.version_labels[label] = newest
    if entry.version_labels:
        served = sorted(set(entry.version_labels.values()) | {newest})
        entry.model_version_policy.Clear()
        entry.model_version_policy.specific.versions.extend(served)


@contextlib.contextmanager
def _file_lock(storage: Storage, uri: str) -> Iterator[None]:
    """Serialise read-modify-write of a local config among concurrent pushes."""
    if storage.scheme != "file":
        yield  # object stores: last writer wins; one config writer per model is the supported setup
        return
    path = local_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def update(uri: str, change) -> tuple[str, str]:
    """Apply `change(config)` to the config at `uri` under a lock; returns (text before, text after)."""
    storage = storage_for(uri)
    with _file_lock(storage, uri):
        config = load(storage, uri)
        before = dump(config) if storage.exists(uri) else ""
        change(config)
        after = dump(config)
        if after != before:
            storage.write_bytes(uri, after.encode())
    return before, after


def restore(uri: str, text: str) -> None:
    """Put back an earlier content (after a failed live verification)."""
    storage = storage_for(uri)
    with _file_lock(storage, uri):
        if text:
            storage.write_bytes(uri, text.encode())
        else:
            storage.delete_tree(uri)
