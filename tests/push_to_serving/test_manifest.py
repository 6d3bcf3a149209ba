"""The version manifest: CRC32C per file (Cloud Storage's encoding), older sha256 manifests still verified."""

from __future__ import annotations

import base64
import hashlib

import google_crc32c

from kfp_tfserving.components.push_to_serving.manifest import (
    MANIFEST_NAME,
    Manifest,
    build_manifest,
    verify_manifest,
)


def _model(root):
    files = {
        "saved_model.pb": b"graph" * 1000,
        "variables/variables.data-00000-of-00001": bytes(range(256)) * 999,
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / MANIFEST_NAME).write_text("{}")  # a manifest never lists itself
    return files


def _flip_one_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_checksums_are_what_cloud_storage_reports(tmp_path):
    files = _model(tmp_path)
    manifest = build_manifest(tmp_path, {"source_uri": "x"})
    expected = {
        rel: {"size": len(data), "crc32c": base64.b64encode(google_crc32c.Checksum(data).digest()).decode()}
        for rel, data in files.items()
    }
    assert manifest.files == expected
    assert verify_manifest(tmp_path, manifest) == []


def test_a_flipped_byte_of_the_same_size_is_found(tmp_path):
    _model(tmp_path)
    manifest = build_manifest(tmp_path, {})
    _flip_one_byte(tmp_path / "variables/variables.data-00000-of-00001")
    assert verify_manifest(tmp_path, manifest) == [
        "variables/variables.data-00000-of-00001: size or crc32c differs"
    ]


def test_an_older_sha256_manifest_still_verifies_and_keeps_its_digest(tmp_path):
    files = _model(tmp_path)
    sha = {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}
    old = Manifest({rel: {"size": len(files[rel]), "sha256": sha[rel]} for rel in files}, {})
    lines = "".join(f"{rel}\0{sha[rel]}\n" for rel in sorted(files))
    assert old.content_digest == hashlib.sha256(lines.encode()).hexdigest()
    assert verify_manifest(tmp_path, old) == []
    _flip_one_byte(tmp_path / "saved_model.pb")
    assert verify_manifest(tmp_path, old) == ["saved_model.pb: size or sha256 differs"]


def test_missing_and_extra_files_are_named(tmp_path):
    _model(tmp_path)
    manifest = build_manifest(tmp_path, {})
    (tmp_path / "saved_model.pb").unlink()
    (tmp_path / "extra.txt").write_text("x")
    assert verify_manifest(tmp_path, manifest) == [
        "saved_model.pb: missing",
        "extra.txt: not in the manifest",
    ]


def test_the_content_digest_follows_the_content(tmp_path):
    _model(tmp_path)
    before = build_manifest(tmp_path, {"source_uri": "a"})
    assert build_manifest(tmp_path, {"source_uri": "b"}).content_digest == before.content_digest
    _flip_one_byte(tmp_path / "saved_model.pb")
    assert build_manifest(tmp_path, {}).content_digest != before.content_digest
