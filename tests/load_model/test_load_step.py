"""The load step: local files, directories and archives land in the artifact with their format detected."""

from __future__ import annotations

import hashlib
import re
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import run_cli

from kfp_tfserving.components.common.errors import ERROR_MARKER, EXIT_CODE_MARKER, FormatError, StorageError
from kfp_tfserving.components.load_model.loader import load_source, run_load_step


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def make_tar(archive: Path, items: dict[str, Path]) -> Path:
    with tarfile.open(archive, "w" if archive.suffix == ".tar" else "w:gz") as tar:
        for arcname, src in items.items():
            tar.add(src, arcname)
    return archive


def make_zip(archive: Path, items: dict[str, Path]) -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, src in items.items():
            paths = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
            for p in paths:
                zf.write(p, arcname if src.is_file() else f"{arcname}/{p.relative_to(src).as_posix()}")
    return archive


def zip_slip(archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("model/saved_model.pb", b"not really")
        zf.writestr("model/../../../escaped.txt", b"pwned")
    return archive


def test_tar_gz_of_a_saved_model_is_unpacked_and_detected(tmp_path, tf2_saved_model):
    archive = make_tar(tmp_path / "linear.tar.gz", {"linear": tf2_saved_model})
    artifact, metadata = tmp_path / "artifact", {}
    assert load_source(str(archive), artifact, metadata) == "saved_model"
    entry = artifact / metadata["entry"]
    assert metadata["entry"] == "linear/linear"
    assert tree(entry) == tree(tf2_saved_model)
    assert metadata["archive"] == "linear.tar.gz" and metadata["archive_format"] == "tar.gz"
    assert metadata["source_sha256"] == sha256(archive)
    assert metadata["source_bytes"] == archive.stat().st_size
    assert metadata["extracted_files"] == len(tree(tf2_saved_model))
    assert metadata["extracted_bytes"] == sum(
        p.stat().st_size for p in tf2_saved_model.rglob("*") if p.is_file()
    )
    assert not [p for p in artifact.rglob("*.tar.gz")], "the archive itself must not be in the artifact"


def test_zip_of_a_keras_file_and_tgz_of_saved_model_contents(tmp_path, keras_two_io, tf2_saved_model):
    archive = make_zip(tmp_path / "scorer.zip", {"two_io.keras": keras_two_io})
    metadata: dict = {}
    assert load_source(str(archive), tmp_path / "a1", metadata) == "keras"
    assert metadata["entry"] == "scorer/two_io.keras"
    assert sha256(tmp_path / "a1" / metadata["entry"]) == sha256(keras_two_io)
    # A SavedModel archived from inside its directory: saved_model.pb sits at the archive's root.
    flat = make_tar(tmp_path / "flat.tgz", {p.name: p for p in tf2_saved_model.iterdir()})
    metadata = {}
    assert load_source(str(flat), tmp_path / "a2", metadata) == "saved_model"
    assert metadata["entry"] == "flat" and metadata["archive_format"] == "tar.gz"


def test_archive_without_a_model_names_the_users_archive(tmp_path):
    readme = tmp_path / "README.txt"
    readme.write_text("no model here")
    other = tmp_path / "notes.txt"
    other.write_text("nor here")
    archive = make_zip(tmp_path / "docs.zip", {"README.txt": readme, "notes.txt": other})
    with pytest.raises(FormatError, match=re.escape(f"{archive}: no TensorFlow model format recognised")):
        load_source(str(archive), tmp_path / "artifact", {})


def test_zip_slip_is_refused_and_nothing_escapes_the_artifact(tmp_path):
    archive = zip_slip(tmp_path / "evil.zip")
    artifact = tmp_path / "deep" / "er" / "artifact"
    with pytest.raises(StorageError) as err:
        load_source(str(archive), artifact, {})
    assert str(archive) in str(err.value) and "model/../../../escaped.txt" in str(err.value)
    assert list(artifact.iterdir()) == []
    assert not list(tmp_path.rglob("escaped.txt"))


def test_the_step_entry_point_reports_one_marked_line_and_exits_2(tmp_path, capsys):
    archive = zip_slip(tmp_path / "evil.zip")
    with pytest.raises(SystemExit) as exited:
        run_load_step(str(archive), tmp_path / "artifact", {})
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith(ERROR_MARKER) and "evil.zip" in lines[1]
    assert lines[0] == f"{EXIT_CODE_MARKER}2"  # what a local run, which sees only the log, exits with


def test_the_extraction_limit_is_a_step_argument(tmp_path, tf2_saved_model):
    archive = make_tar(tmp_path / "linear.tar.gz", {"linear": tf2_saved_model})
    with pytest.raises(StorageError, match="linear.tar.gz: expands past the 1.0 KB limit"):
        load_source(str(archive), tmp_path / "artifact", {}, max_extract_bytes=1024)
    assert list((tmp_path / "artifact").iterdir()) == []


def test_a_plain_file_is_copied_and_hashed(tmp_path, keras2_h5):
    artifact, metadata = tmp_path / "artifact", {}
    assert load_source(f"file://{keras2_h5}", artifact, metadata) == "keras_h5"
    assert metadata["entry"] == keras2_h5.name and metadata["archive"] == ""
    assert sha256(artifact / keras2_h5.name) == metadata["source_sha256"] == sha256(keras2_h5)
    assert metadata["source_bytes"] == keras2_h5.stat().st_size


def test_a_directory_digest_follows_its_content(tmp_path, tf2_saved_model):
    copy = shutil.copytree(tf2_saved_model, tmp_path / "elsewhere" / "linear")
    first, second, third = {}, {}, {}
    load_source(str(tf2_saved_model), tmp_path / "a1", first)
    load_source(str(copy), tmp_path / "a2", second)
    assert first["source_sha256"] == second["source_sha256"]
    assert first["source_bytes"] == sum(p.stat().st_size for p in copy.rglob("*") if p.is_file())
    assert first["archive"] == ""
    # One changed byte in one file changes the digest.
    variables = next(copy.glob("variables/variables.data-*"))
    data = bytearray(variables.read_bytes())
    data[-1] ^= 0xFF
    variables.write_bytes(bytes(data))
    load_source(str(copy), tmp_path / "a3", third)
    assert third["source_sha256"] != first["source_sha256"]


def test_a_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(StorageError, match=r"nothing-here.keras: not found \(or an empty directory\)"):
        load_source(str(tmp_path / "nothing-here.keras"), tmp_path / "artifact", {})


@pytest.mark.slow
def test_cli_refuses_a_zip_slip_archive_and_publishes_nothing(tmp_path):
    archive = zip_slip(tmp_path / "evil.zip")
    base = tmp_path / "serving" / "evil"
    proc = run_cli("run", str(archive), "--base-path", str(base), "--json")
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "evil.zip" in lines[0] and "model/../../../escaped.txt" in lines[0] and "escapes" in lines[0]
    assert proc.stdout.strip() == ""
    assert not base.exists() or list(base.iterdir()) == []
    assert not list(tmp_path.rglob("escaped.txt"))
