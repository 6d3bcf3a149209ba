"""Publish a SavedModel as a new version under a TF Serving model base path: local, gs:// or s3://.

TF Serving loads any sub-directory whose name parses as an integer, so a version must appear complete or
not at all: it is staged under a name TF Serving ignores, verified against its manifest, then promoted
(protocol_local: one rename; protocol_object: claim a number, copy saved_model.pb last). After that the
optional steps: models.config, live verification on a running server (removing the version again if it
fails), retention.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfp_tfserving.components.common.arguments import check_publish_arguments
from kfp_tfserving.components.common.artifacts import CheckedModelMetadata, PushedModelMetadata
from kfp_tfserving.components.common.errors import PublishError, UserError, reports_errors
from kfp_tfserving.components.common.saved_model.tags import Tags, parse_tags, tag_set_text, tags_option
from kfp_tfserving.components.common.storage import join_uri, storage_for
from kfp_tfserving.components.common.storage.local import local_path
from kfp_tfserving.components.common.tree_walk import check_tree
from kfp_tfserving.components.push_to_serving.manifest import MANIFEST_NAME, build_manifest
from kfp_tfserving.components.push_to_serving.options import PUSH_OPTIONS, VERSION_POLICIES
from kfp_tfserving.components.push_to_serving.publishable import check_publishable
from kfp_tfserving.components.push_to_serving.versions import (
    DEFAULT_STALE_AFTER,
    numeric_versions,
    read_manifest,
    remove_version,
    version_uri,
    versions_to_remove,
)


def _mc():
    """models.config handling, imported only by the pushes that use it: protobuf's text format and TF
    Serving's protos cost a push that has no models.config a noticeable share of its start-up."""
    from kfp_tfserving.components.push_to_serving import models_config

    return models_config


@dataclass
class PushOptions:
    """The push step's parameters (their defaults and meaning: push_to_serving/options.py) and the settings
    only the command line and the tests give."""

    model_name: str = PUSH_OPTIONS.default("model_name")
    version_policy: str = PUSH_OPTIONS.default("version_policy")
    version: int = PUSH_OPTIONS.default("version")
    force: bool = PUSH_OPTIONS.default("force")
    keep: int = PUSH_OPTIONS.default("keep")
    models_config: str = PUSH_OPTIONS.default("models_config")
    label: str = PUSH_OPTIONS.default("label")
    serving_url: str = PUSH_OPTIONS.default("serving_url")
    serving_timeout: float = PUSH_OPTIONS.default("serving_timeout")
    run_id: str = PUSH_OPTIONS.default("run_id")
    sample: Path | None = None  # request for the live check; generated from the signature otherwise
    tags: Tags = parse_tags(PUSH_OPTIONS.default("tags"))  # also given as TF Serving spells it: "serve,gpu"
    stale_after: float = DEFAULT_STALE_AFTER  # object stores: when a silent push counts as dead

    def __post_init__(self) -> None:
        self.tags = parse_tags(self.tags)


@dataclass
class PushResult:
    version: int
    destination: str
    published: bool  # False when the same model was already the newest version
    content_digest: str
    manifest_sha256: str = ""
    removed: list[int] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)
    model_fingerprint: str = ""

    @property
    def outcome(self) -> str:
        return (
            f"published version {self.version}"
            if self.published
            else f"unchanged: version {self.version} kept"
        )


def model_name_from_base_path(base_path: str) -> str:
    return base_path.rstrip("/").split("/")[-1] or "model"


def _check_options(model_dir: Path, base_path: str, options: PushOptions) -> None:
    if options.version_policy not in VERSION_POLICIES:
        raise UserError(
            f"unknown version policy '{options.version_policy}'", f"use one of {', '.join(VERSION_POLICIES)}"
        )
    check_publish_arguments(base_path, options.model_name, options.version_policy, options.version)
    if options.keep < 0:
        raise UserError(f"--keep must be 0 (keep all) or positive (got {options.keep})")
    if options.label:
        _mc().check_label(options.label)
        if not options.models_config:
            raise UserError(f"--label {options.label} needs --models-config: labels live in models.config")
    if not (model_dir / "saved_model.pb").is_file():
        raise PublishError(
            f"{model_dir}: not a SavedModel (no saved_model.pb)", "push the export step's output"
        )
    check_tree(model_dir)  # before any copy, hash or upload: regular files only, size capped
    check_publishable(model_dir, options.tags)


def _file_sizes(model_dir: Path) -> dict[str, int]:
    return {
        p.relative_to(model_dir).as_posix(): p.stat().st_size
        for p in model_dir.rglob("*")
        if p.is_file() and p.name != MANIFEST_NAME
    }


def _normalise(base_path: str) -> str:
    return str(local_path(base_path).resolve()) if "://" not in base_path else base_path.rstrip("/")


def publish(
    model_dir: Path, base_path: str, *, source: dict[str, Any] | None = None, options: PushOptions
) -> PushResult:
    _check_options(model_dir, base_path, options)
    base = _normalise(base_path)
    storage = storage_for(base)
    name = options.model_name or model_name_from_base_path(base)
    if options.models_config:  # a broken config fails the push before anything is published
        _mc().load(storage_for(options.models_config), options.models_config)

    existing = numeric_versions(storage, base)
    newest = read_manifest(storage, base, existing[-1]) if existing else None
    # The check step already computed it in its TensorFlow process; a push on its own computes it here.
    fingerprint = (source or {}).get("model_fingerprint") or _model_fingerprint(model_dir)
    source = {**(source or {}), **({"model_fingerprint": fingerprint} if fingerprint else {})}
    if options.run_id:  # what `kfp-tfserving runs` reads to tell which version a run published
        source["pipeline_run_id"] = options.run_id
    may_keep = newest is not None and not options.force and options.version_policy != "explicit"
    same_model = may_keep and bool(fingerprint) and fingerprint == newest.model_fingerprint
    # Versions published before fingerprints (or under another fingerprint scheme) compare by bytes.
    may_repeat = (
        may_keep
        and not same_model
        and _file_sizes(model_dir) == {rel: meta["size"] for rel, meta in newest.files.items()}
    )
    # Hash up front only when the content may repeat the newest version or the store cannot hash while
    # copying; otherwise the local copy hashes in the same pass (one read of the model instead of three).
    manifest = build_manifest(model_dir, source) if may_repeat else None
    if same_model or (may_repeat and manifest.content_digest == newest.content_digest):
        number, published, manifest = existing[-1], False, newest
        why = "the same model fingerprint" if same_model else "identical files"
        print(f"unchanged: version {number} kept ({why} as {version_uri(base, number)}); nothing published")
    else:
        if storage.scheme == "file":
            from kfp_tfserving.components.push_to_serving.protocol_local import publish_local

            number, manifest = publish_local(
                model_dir, local_path(base), manifest, options.version_policy, options.version, source
            )
        else:
            from kfp_tfserving.components.push_to_serving.protocol_object import publish_object

            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hash") as pool:
                # Hash on another core while the upload runs: the network, not sha256, sets the pace.
                pending = manifest or pool.submit(build_manifest, model_dir, source)
                number, manifest = publish_object(
                    storage,
                    model_dir,
                    base,
                    pending,
                    options.version_policy,
                    options.version,
                    options.stale_after,
                )
        published = True
        print(f"published version {number}: {version_uri(base, number)}", flush=True)

    labels = _configure_and_verify(model_dir, storage, base, name, number, published, options)
    removed = _retain(storage, base, options.keep, set(labels.values()))
    manifest_bytes = storage.read_bytes(join_uri(version_uri(base, number), MANIFEST_NAME))
    return PushResult(
        number,
        version_uri(base, number),
        published,
        manifest.content_digest,
        hashlib.sha256(manifest_bytes).hexdigest(),
        removed,
        labels,
        manifest.model_fingerprint,
    )


def _model_fingerprint(model_dir: Path) -> str:
    """The model fingerprint, or "" when it cannot be computed: it only decides whether to skip a push, and
    without it the push compares file bytes as before."""
    from kfp_tfserving.components.common.saved_model.fingerprint import model_fingerprint

    try:
        return model_fingerprint(model_dir).digest
    except Exception as err:  # noqa: BLE001 - any failure here must not fail the push itself
        print(
            f"{model_dir}: no model fingerprint ({' '.join(str(err).split())}); comparing file bytes",
            flush=True,
        )
        return ""


def _configure_and_verify(model_dir, storage, base, name, number, published, options) -> dict[str, int]:
    """models.config and the live check. A version that fails the live check is removed again (TF Serving
    then keeps serving the previous one) and the config is put back as it was."""
    before = None
    # With a live server the label waits until the version is proven: TF Serving refuses a label for a
    # version it has not loaded.
    label_now = options.label if not (options.serving_url and published) else ""
    try:
        if options.models_config:
            before, _ = _mc().update(
                options.models_config,
                lambda c: _mc().set_version(c, name, base, numeric_versions(storage, base), label_now),
            )
        if options.serving_url and published:
            from kfp_tfserving.components.push_to_serving.live_server import verify_live

            verify_live(
                options.serving_url,
                name,
                number,
                model_dir,
                timeout=options.serving_timeout,
                sample=options.sample,
                tags=options.tags,
            )
            print(f"{options.serving_url}: version {number} is AVAILABLE and answers like the export")
            if options.models_config and options.label:
                _mc().update(
                    options.models_config,
                    lambda c: _mc().set_version(
                        c, name, base, numeric_versions(storage, base), options.label
                    ),
                )
    except BaseException:  # whatever went wrong, a version that was not proven must not stay
        if published:
            remove_version(storage, base, number)
            print(f"removed version {number} again: it failed verification", flush=True)
        if before is not None:
            _mc().restore(options.models_config, before)
        raise
    if not options.models_config:
        return {}
    return _mc().labels_of(_mc().load(storage_for(options.models_config), options.models_config), name)


def _retain(storage, base: str, keep: int, labelled: set[int]) -> list[int]:
    removed = versions_to_remove(numeric_versions(storage, base), keep, labelled)
    for number in removed:
        remove_version(storage, base, number)
    if removed:
        print(f"retention (--keep {keep}): removed version(s) {', '.join(map(str, removed))}", flush=True)
    return removed


def push_step(
    model_dir: Path,
    model_metadata: dict[str, Any],
    pushed_metadata: dict[str, Any],
    base_path: str,
    options: PushOptions,
    report_path: Path | None = None,
) -> PushResult:
    """Publish, fill the pushed-model artifact's metadata with TFX Pusher's keys, write the Markdown report.

    `pushed` follows TFX's Pusher: 1 once the version is in place, also when the newest version already was
    this model (Pusher skips the copy when the version directory exists and still reports 1). Whether this
    push wrote a new version is this project's own `published` (1 or 0), with `push_outcome` saying which."""
    checked = CheckedModelMetadata.from_dict(model_metadata)
    source = {
        "source_uri": checked.source_uri,
        "source_format": checked.source_format,
        "model_fingerprint": checked.model_fingerprint,
    }
    # One channel for the tag-set: the step's `tags`. The export's record of it is a cross-check, so a
    # push standing alone after an export under another tag-set is refused rather than silently retargeted.
    if checked.saved_model_tags and parse_tags(checked.saved_model_tags) != options.tags:
        served = parse_tags(checked.saved_model_tags)
        raise UserError(
            f"{model_dir}: the export served its graph under the tag-set {tag_set_text(served)}, the push "
            f"verifies {tag_set_text(options.tags)}",
            f"push with tags={tags_option(served)}, the export step's tags",
        )
    result = publish(model_dir, base_path, source=source, options=options)
    pushed = PushedModelMetadata(
        pushed=1,
        published=1 if result.published else 0,
        pushed_destination=result.destination,
        pushed_version=str(result.version),
        model_name=options.model_name or model_name_from_base_path(base_path),
        base_path=base_path,
        push_outcome=result.outcome,
        model_fingerprint=result.model_fingerprint,
        content_digest=result.content_digest,
        manifest_sha256=result.manifest_sha256,
        removed_versions=result.removed,
        version_labels=result.labels,
        serving_signature=checked.serving_default,
        repaired=checked.repaired,
    )
    pushed_metadata.update(pushed.to_dict())
    if report_path is not None:
        report_path.write_text(push_report_markdown(result))
    return result


def push_report_markdown(result: PushResult) -> str:
    if result.published:
        headline = f"**{result.outcome}**: `{result.destination}`"
    else:
        headline = (
            f"**{result.outcome}**: `{result.destination}` is already this model, so TF Serving has nothing "
            "new to load (`force` publishes anyway)"
        )
    rows = [
        ("model fingerprint", result.model_fingerprint or "(none)"),
        ("content digest", result.content_digest),
    ]
    if result.removed:
        rows.append(("removed versions", ", ".join(map(str, result.removed))))
    rows += [(f"label `{label}`", f"version {number}") for label, number in sorted(result.labels.items())]
    table = "\n".join(f"| {what} | `{value}` |" for what, value in rows)
    return f"# Push\n\n{headline}\n\n| | |\n|---|---|\n{table}\n"


run_push_step = reports_errors(push_step)
