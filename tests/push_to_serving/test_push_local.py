"""The push step on a local base path: versions, idempotence, cleanup, retention, models.config, rollback."""

from __future__ import annotations

import fcntl
import os
import shutil

import push_models
import pytest
from conftest import published_versions
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from kfp_tfserving.components.common.errors import PublishError, UserError
from kfp_tfserving.components.common.storage import storage_for
from kfp_tfserving.components.push_to_serving.manifest import MANIFEST_NAME, Manifest
from kfp_tfserving.components.push_to_serving.publisher import PushOptions, publish, push_step
from kfp_tfserving.components.push_to_serving.rollback import rollback
from kfp_tfserving.components.push_to_serving.versions import inspect_version

tiny_models = push_models.tiny_models  # session fixtures: tiny SavedModels
tiny_model = push_models.tiny_model


def _push(model, base, **kw):
    return publish(model, str(base), options=PushOptions(**kw))


def _config(path):
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(path.read_text(), config)
    return config


def test_versions_are_complete_and_idempotent(tmp_path, tiny_models):
    base = tmp_path / "serving" / "m"
    first = _push(tiny_models[0], base)
    assert (first.version, first.published) == (1, True)
    again = _push(tiny_models[0], base)
    assert (again.version, again.published) == (1, False)  # identical content: nothing new
    assert again.content_digest == first.content_digest
    forced = _push(tiny_models[0], base, force=True)
    other = _push(tiny_models[1], base)
    assert (forced.version, other.version) == (2, 3)
    assert published_versions(base) == [1, 2, 3]
    for number in (1, 2, 3):
        info = inspect_version(storage_for(str(base)), str(base), number)
        assert info.verified, info.problems
    assert other.content_digest != first.content_digest
    assert [p.name for p in base.iterdir() if not p.name.isdigit()] == []  # no staging left


def test_version_policies(tmp_path, tiny_models):
    base = tmp_path / "m"
    assert _push(tiny_models[0], base, version_policy="explicit", version=7).version == 7
    with pytest.raises(PublishError, match="version 7 already exists"):
        _push(tiny_models[1], base, version_policy="explicit", version=7)
    stamped = _push(tiny_models[1], base, version_policy="timestamp")
    assert stamped.version > 1_600_000_000
    assert _push(tiny_models[2], base).version == stamped.version + 1
    with pytest.raises(UserError, match="needs a positive --version"):
        _push(tiny_models[3], base, version_policy="explicit")
    with pytest.raises(UserError, match="unknown version policy 'latest'"):
        _push(tiny_models[3], base, version_policy="latest")


def test_bad_inputs_publish_nothing(tmp_path, tiny_model):
    base = tmp_path / "m"
    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    with pytest.raises(PublishError, match="no saved_model.pb"):
        _push(not_a_model, base)
    with pytest.raises(UserError, match="needs --models-config"):
        _push(tiny_model, base, label="stable")
    with pytest.raises(UserError, match="version label 'bad label!' is not valid"):
        _push(tiny_model, base, label="bad label!", models_config=str(tmp_path / "c"))
    with pytest.raises(UserError, match="--keep must be"):
        _push(tiny_model, base, keep=-1)
    broken = tmp_path / "broken.config"
    broken.write_text("model_config_list { config { nme: 'x' } }")
    with pytest.raises(UserError, match="not a valid ModelServerConfig"):
        _push(tiny_model, base, models_config=str(broken))
    assert published_versions(base) == []
    assert broken.read_text() == "model_config_list { config { nme: 'x' } }"


def test_stale_staging_of_dead_pushes_is_cleaned_but_live_staging_is_kept(tmp_path, tiny_model):
    base = tmp_path / "m"
    base.mkdir()
    dead = base / ".staging-dead"
    shutil.copytree(tiny_model, dead)
    live = base / ".staging-live"
    live.mkdir()
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a running push holds it
    try:
        assert _push(tiny_model, base).version == 1
        assert not dead.exists()
        assert live.exists()
    finally:
        os.close(fd)
    assert _push(tiny_model, base, force=True).version == 2
    assert not live.exists()


def test_retention_keeps_newest_and_labelled(tmp_path, tiny_models):
    base = tmp_path / "m"
    config = tmp_path / "models.config"
    _push(tiny_models[0], base, models_config=str(config), label="stable")  # 1 is labelled stable
    for model in tiny_models[1:4]:
        _push(model, base, models_config=str(config))
    result = _push(tiny_models[4], base, models_config=str(config), keep=2)
    assert result.removed == [2, 3]
    assert published_versions(base) == [1, 4, 5]  # 1 survives: a label points to it
    entry = _config(config).model_config_list.config[0]
    assert dict(entry.version_labels) == {"stable": 1}
    assert list(entry.model_version_policy.specific.versions) == [1, 5]
    # keep=1 still never removes the newest.
    assert _push(tiny_models[5], base, models_config=str(config), keep=1).removed == [4, 5]
    assert published_versions(base) == [1, 6]


def test_models_config_entry_and_labels(tmp_path, tiny_models):
    base = tmp_path / "serving" / "emotion"
    config = tmp_path / "models.config"
    first = _push(tiny_models[0], base, models_config=str(config))
    entry = _config(config).model_config_list.config[0]
    assert (entry.name, entry.base_path, entry.model_platform) == ("emotion", str(base), "tensorflow")
    assert not entry.HasField("model_version_policy")  # no labels: TF Serving's default policy
    _push(tiny_models[0], base, models_config=str(config), label="stable")  # identical: label only
    assert published_versions(base) == [first.version]
    canary = _push(tiny_models[1], base, models_config=str(config), label="canary")
    entry = _config(config).model_config_list.config[0]
    assert dict(entry.version_labels) == {"stable": 1, "canary": canary.version}
    # Promote: pushing the canary's content again with --label stable moves stable, publishes nothing.
    promoted = _push(tiny_models[1], base, models_config=str(config), label="stable")
    assert not promoted.published and promoted.labels == {"stable": 2, "canary": 2}
    # Another model in the same config gets its own entry; the same name elsewhere is refused.
    _push(tiny_models[2], tmp_path / "serving" / "other", models_config=str(config))
    assert [c.name for c in _config(config).model_config_list.config] == ["emotion", "other"]
    with pytest.raises(PublishError, match="model 'emotion' has base_path"):
        _push(tiny_models[3], tmp_path / "elsewhere", model_name="emotion", models_config=str(config))


def test_rollback_removes_newer_versions_and_moves_labels(tmp_path, tiny_models):
    base = tmp_path / "m"
    config = tmp_path / "models.config"
    for model in tiny_models[:3]:
        _push(model, base, models_config=str(config), label="canary")
    target, removed = rollback(str(base), models_config=str(config))
    assert (target, removed) == (2, [3])
    assert published_versions(base) == [1, 2]
    assert dict(_config(config).model_config_list.config[0].version_labels) == {"canary": 2}
    target, removed = rollback(str(base), to=1)
    assert (target, removed) == (1, [2]) and published_versions(base) == [1]
    with pytest.raises(UserError, match="nothing to roll back to"):
        rollback(str(base))
    with pytest.raises(UserError, match="no version 9"):
        rollback(str(base), to=9)


def test_rollback_refuses_an_unverified_target(tmp_path, tiny_models):
    base = tmp_path / "m"
    _push(tiny_models[0], base)
    _push(tiny_models[1], base)
    (base / "1" / "saved_model.pb").write_bytes(b"tampered")
    with pytest.raises(PublishError, match="does not match its manifest"):
        rollback(str(base))
    assert published_versions(base) == [1, 2]


def test_push_step_metadata_uses_tfx_pusher_keys(tmp_path, tiny_model):
    pushed: dict = {}
    base = tmp_path / "m"
    result = push_step(
        tiny_model,
        {"source_uri": "gs://b/model.h5", "signatures": {"serving_default": {"inputs": {}}}},
        pushed,
        str(base),
        PushOptions(),
    )
    assert pushed["pushed"] == 1 and pushed["pushed_version"] == str(result.version)
    assert pushed["pushed_destination"] == str(base / str(result.version))
    manifest = Manifest.from_json((base / "1" / MANIFEST_NAME).read_text())
    assert pushed["content_digest"] == manifest.content_digest
    assert manifest.source["source_uri"] == "gs://b/model.h5"
    again: dict = {}
    push_step(tiny_model, {}, again, str(base), PushOptions())
    assert again["pushed"] == 1 and again["pushed_version"] == "1" and again["published"] == 0


def test_push_step_refuses_a_model_exported_under_another_tag_set(tmp_path, tiny_model):
    """The tag-set travels as the step's `tags` only; the export's record of it is checked, never adopted."""
    base = tmp_path / "m"
    exported = {"saved_model_tags": ["gpu", "serve"]}
    with pytest.raises(UserError, match=r"tag-set \{gpu,serve\}.*verifies \{serve\}") as err:
        push_step(tiny_model, exported, {}, str(base), PushOptions())
    assert "tags=gpu,serve" in str(err.value)
    assert not base.exists() or not published_versions(base)
    pushed: dict = {}
    push_step(tiny_model, {"saved_model_tags": ["serve"]}, pushed, str(base), PushOptions(tags="serve"))
    assert pushed["pushed_version"] == "1"
