"""The push step on gs:// and s3:// (loopback servers): protocol, idempotence, stale cleanup, retries."""

from __future__ import annotations

import json
import time

import push_models
import pytest

from kfp_tfserving.components.common.errors import PublishError
from kfp_tfserving.components.common.storage import join_uri, storage_for
from kfp_tfserving.components.push_to_serving import protocol_object
from kfp_tfserving.components.push_to_serving.manifest import MANIFEST_NAME
from kfp_tfserving.components.push_to_serving.publisher import PushOptions, publish
from kfp_tfserving.components.push_to_serving.rollback import rollback
from kfp_tfserving.components.push_to_serving.versions import inspect_version, numeric_versions

tiny_models = push_models.tiny_models  # session fixtures: tiny SavedModels
tiny_model = push_models.tiny_model


@pytest.fixture(params=["gcs_server", "s3_server"])
def remote_base(request):
    server = request.getfixturevalue(request.param)
    return server, f"{server.scheme}://{server.new_bucket()}/models/tiny"


def _push(model, base, **kw):
    return publish(model, base, options=PushOptions(**kw))


def test_publish_idempotence_and_rollback(remote_base, tiny_models, tmp_path):
    _, base = remote_base
    storage = storage_for(base)
    first = _push(tiny_models[0], base)
    assert (first.version, first.published, first.destination) == (1, True, f"{base}/1")
    assert not _push(tiny_models[0], base).published
    second = _push(tiny_models[1], base)
    assert second.version == 2 and numeric_versions(storage, base) == [1, 2]
    for number in (1, 2):
        assert inspect_version(storage, base, number).verified
        assert inspect_version(storage, base, number, deep=True).verified
    # Only names TF Serving ignores besides the versions: the claims; no staging or lease left.
    assert storage.list_dir(base) == [".claims", "1", "2"]
    # The published files are the model's own, byte for byte.
    local_pb = (tiny_models[1] / "saved_model.pb").read_bytes()
    assert storage.read_bytes(f"{base}/2/saved_model.pb") == local_pb
    assert rollback(base) == (1, [2]) and numeric_versions(storage, base) == [1]
    # A rolled-back number is never handed out again: TF Serving may still cache it.
    assert _push(tiny_models[2], base).version == 3


def test_explicit_version_taken_on_object_store(remote_base, tiny_models):
    _, base = remote_base
    assert _push(tiny_models[0], base, version_policy="explicit", version=5).version == 5
    with pytest.raises(PublishError, match="version 5 is taken"):
        _push(tiny_models[1], base, version_policy="explicit", version=5)
    assert numeric_versions(storage_for(base), base) == [5]


def test_dead_push_leftovers_are_cleaned_when_stale(remote_base, tiny_models):
    _, base = remote_base
    storage = storage_for(base)
    _push(tiny_models[0], base)
    # What a push killed mid-copy leaves: a staging prefix with its lease, a claim and a partial version.
    old = json.dumps({"started_at": time.time() - 7200}).encode()
    storage.write_bytes(f"{base}/.staging-dead/variables/variables.index", b"x")
    storage.write_bytes(f"{base}/.staging-dead.lease", old)
    storage.write_bytes(
        f"{base}/.claims/2", json.dumps({"owner": "dead", "claimed_at": time.time() - 7200}).encode()
    )
    storage.write_bytes(f"{base}/2/variables/variables.index", b"x")
    # A live push's staging (fresh lease) and a version some other tool wrote (no claim) stay untouched.
    storage.write_bytes(f"{base}/.staging-live/variables/variables.index", b"x")
    storage.write_bytes(f"{base}/.staging-live.lease", json.dumps({"started_at": time.time()}).encode())
    storage.write_bytes(f"{base}/7/saved_model.pb", b"foreign")

    result = _push(tiny_models[1], base, stale_after=3600)
    assert result.version == 8
    names = storage.list_dir(base)
    assert ".staging-dead" not in names and ".staging-dead.lease" not in names and "2" not in names
    assert {".staging-live", ".staging-live.lease", "7"} <= set(names)
    assert storage.read_bytes(f"{base}/7/saved_model.pb") == b"foreign"


def test_transient_errors_during_a_push_are_retried(remote_base, tiny_models, monkeypatch):
    server, base = remote_base
    for key, value in server.env.items():  # the client must talk to the server the faults are injected in
        monkeypatch.setenv(key, value)
    server.inject_faults(3, status=503)
    result = _push(tiny_models[0], base)
    assert server.faults_remaining() == 0
    assert inspect_version(storage_for(base), base, result.version, deep=True).verified


def test_copy_order_puts_saved_model_pb_last_and_variables_first():
    files = ["saved_model.pb", "fingerprint.pb", "assets/vocab.txt", "variables/variables.index"]
    ordered = sorted(files, key=protocol_object.copy_order)
    assert ordered[0].startswith("variables/") and ordered[1].startswith("assets/")
    assert ordered[-1] == "saved_model.pb"


def test_a_failed_copy_leaves_no_partial_version(gcs_server, tiny_models, monkeypatch):
    base = f"gs://{gcs_server.new_bucket()}/m"
    storage_cls = type(storage_for(base))
    real_copy = storage_cls.copy

    def failing_copy(self, src, dst, *, if_absent=False):
        if dst.endswith("saved_model.pb"):
            raise PublishError(f"{dst}: injected failure")
        return real_copy(self, src, dst, if_absent=if_absent)

    monkeypatch.setattr(storage_cls, "copy", failing_copy)
    with pytest.raises(PublishError, match="injected failure"):
        _push(tiny_models[0], base)
    storage = storage_for(base)
    assert numeric_versions(storage, base) == []
    assert [n for n in storage.list_dir(base) if n.startswith(".staging-")] == []
    monkeypatch.undo()
    assert _push(tiny_models[0], base).version == 2  # number 1 stays claimed, never reused
    assert storage.read_bytes(join_uri(base, "2", MANIFEST_NAME))


def test_a_version_claimed_long_ago_by_a_push_still_beating_is_left_alone(gcs_server, tiny_models):
    base = f"gs://{gcs_server.new_bucket()}/models/slow"
    storage = storage_for(base)
    # A slow push: claimed version 1 two hours ago and is still copying, but its lease is fresh.
    storage.write_bytes(
        f"{base}/.claims/1", json.dumps({"owner": "slow", "claimed_at": time.time() - 7200}).encode()
    )
    storage.write_bytes(f"{base}/1/variables/variables.index", b"x")
    storage.write_bytes(f"{base}/.staging-slow.lease", json.dumps({"started_at": time.time()}).encode())

    result = _push(tiny_models[0], base)

    assert result.version == 2
    assert storage.exists(f"{base}/1/variables/variables.index")


def test_a_version_completed_while_a_cleanup_looks_at_it_is_kept(remote_base, tiny_models, monkeypatch):
    """The race a concurrent push once lost a published version to: the cleanup finds version 1 without its
    manifest, and before it reads the owner's lease, the owner completes version 1 and deletes its lease."""
    _, base = remote_base
    storage = storage_for(base)
    done = _push(tiny_models[0], base)
    manifest = storage.read_bytes(join_uri(done.destination, MANIFEST_NAME))
    storage.delete_tree(join_uri(done.destination, MANIFEST_NAME))  # version 1 as it is mid-promote
    lease = f"{base}/.staging-owner.lease"
    storage.write_bytes(
        f"{base}/.claims/1", json.dumps({"owner": "owner", "claimed_at": time.time()}).encode()
    )
    storage.write_bytes(lease, json.dumps({"started_at": time.time()}).encode())
    storage_cls, real_read = type(storage), type(storage).read_bytes
    manifest_uri = join_uri(done.destination, MANIFEST_NAME)
    looked = []

    def owner_finishes_first(self, uri):
        looked.append(uri)
        # Once the cleanup has found no manifest, the owner completes just before its lease is read.
        if uri == lease and manifest_uri in looked and storage.exists(lease):
            storage.write_bytes(manifest_uri, manifest)
            storage.delete_tree(lease)
        return real_read(self, uri)

    monkeypatch.setattr(storage_cls, "read_bytes", owner_finishes_first)
    assert protocol_object.clean_stale(storage, base) == []
    monkeypatch.undo()
    assert inspect_version(storage, base, 1, deep=True).verified


def test_an_unreadable_lease_is_not_taken_for_a_dead_push(gcs_server, tiny_models):
    base = f"gs://{gcs_server.new_bucket()}/models/m"
    storage = storage_for(base)
    storage.write_bytes(
        f"{base}/.claims/1", json.dumps({"owner": "busy", "claimed_at": time.time()}).encode()
    )
    storage.write_bytes(f"{base}/1/variables/variables.index", b"x")
    storage.write_bytes(f"{base}/.staging-busy.lease", b"")  # as read while an emulator rewrites it
    storage.write_bytes(f"{base}/.staging-gone/variables/variables.index", b"x")  # its lease is gone
    assert protocol_object.clean_stale(storage, base) == [".staging-gone"]
    assert storage.exists(f"{base}/1/variables/variables.index")


def test_the_lease_is_refreshed_by_a_heartbeat_while_the_push_lives(gcs_server):
    uri = f"gs://{gcs_server.new_bucket()}/models/m/.staging-x.lease"
    storage = storage_for(uri)
    lease = protocol_object._Lease(storage, uri, stale_after=0.4)  # beats every 0.1 s
    try:
        first = json.loads(storage.read_bytes(uri))["started_at"]
        deadline = time.time() + 10
        while json.loads(storage.read_bytes(uri))["started_at"] == first and time.time() < deadline:
            time.sleep(0.05)
        assert json.loads(storage.read_bytes(uri))["started_at"] > first
    finally:
        lease.stop()
    stopped_at = json.loads(storage.read_bytes(uri))["started_at"]
    time.sleep(0.3)
    assert json.loads(storage.read_bytes(uri))["started_at"] == stopped_at  # no beats after stop()


def test_promote_copies_saved_model_pb_only_after_every_other_file(
    remote_base, tiny_models, monkeypatch, capsys
):
    _, base = remote_base
    storage_cls = type(storage_for(base))
    real_copy = storage_cls.copy
    finished: list[str] = []  # appended from the promote threads as each copy completes

    def recording_copy(self, src, dst, *, if_absent=False):
        done = real_copy(self, src, dst, if_absent=if_absent)
        finished.append(dst.split("/1/", 1)[1])
        return done

    monkeypatch.setattr(storage_cls, "copy", recording_copy)
    assert _push(tiny_models[0], base).version == 1
    assert finished[-2:] == ["saved_model.pb", MANIFEST_NAME]
    assert sorted(finished[:-2]) == sorted(
        p.relative_to(tiny_models[0]).as_posix()
        for p in tiny_models[0].rglob("*")
        if p.is_file() and p.name != "saved_model.pb"
    )
    assert "files without saved_model.pb for" in capsys.readouterr().out


def test_gcs_staged_objects_must_carry_the_manifests_crc32c(gcs_server, tiny_models, monkeypatch):
    """A file that changed between being checksummed and being uploaded (same size, other bytes) is caught
    by comparing the CRC32C Cloud Storage stored with the manifest's, and nothing is published."""
    from kfp_tfserving.components.push_to_serving import publisher

    real = publisher.build_manifest

    def checksummed_before_a_change(model_dir, source):
        manifest = real(model_dir, source)
        rel = next(r for r in manifest.files if r.startswith("variables/variables.data"))
        manifest.files[rel] = {**manifest.files[rel], "crc32c": "AAAAAA=="}
        return manifest

    monkeypatch.setattr(publisher, "build_manifest", checksummed_before_a_change)
    base = f"gs://{gcs_server.new_bucket()}/models/tiny"
    with pytest.raises(PublishError, match=r"variables\.data-\S+: the stored crc32c \S+ differs"):
        _push(tiny_models[0], base)
    storage = storage_for(base)
    assert numeric_versions(storage, base) == []
    assert [n for n in storage.list_dir(base) if not n.startswith(".claims")] == []


def test_gcs_listing_verifies_crc32c_without_downloading(gcs_server, tiny_models, monkeypatch):
    base = f"gs://{gcs_server.new_bucket()}/models/tiny"
    assert _push(tiny_models[0], base).published
    storage = storage_for(base)
    monkeypatch.setattr(type(storage), "download", lambda *a, **k: pytest.fail("verification downloaded"))
    info = inspect_version(storage, base, 1)
    assert info.verified
    rel = next(iter(info.manifest.files))
    info.manifest.files[rel]["crc32c"] = "AAAAAA=="
    from kfp_tfserving.components.push_to_serving.versions import verify_files

    assert verify_files(storage, f"{base}/1", info.manifest) == [
        f"{rel}: the stored crc32c {storage.stored_crc32c(f'{base}/1')[rel]} differs from the manifest's AAAAAA=="
    ]
