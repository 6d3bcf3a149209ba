"""Safe extraction: unsafe entries and size bombs are refused with one line, nothing lands outside."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest

from kfp_tfserving.components.common import archives
from kfp_tfserving.components.common.archives import (
    Entry,
    archive_kind,
    archive_stem,
    extract_archive,
    max_extract_bytes,
)
from kfp_tfserving.components.common.errors import StorageError

MB = 1024 * 1024


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def _zip(path: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def _zip_symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def _zip_fifo(name: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFIFO | 0o644) << 16
    return info, b""


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


GOOD = ("model/ok.txt", b"fine")

UNSAFE_TAR = {
    "dotdot": ([_file("../escaped.txt", b"pwned")], "../escaped.txt", "'..'"),
    "nested-dotdot": ([_file("model/../../escaped.txt", b"pwned")], "model/../../escaped.txt", "'..'"),
    "absolute": (
        [_file("/tmp/kfp-tfserving-abs-escape.txt", b"pwned")],
        "/tmp/kfp-tfserving-abs",
        "absolute",
    ),
    "symlink": ([_special("model/link", tarfile.SYMTYPE, "/etc/passwd")], "model/link", "symbolic link"),
    "hardlink": (
        [_file("model/a", b"x"), _special("model/b", tarfile.LNKTYPE, "model/a")],
        "model/b",
        "hard link",
    ),
    "device": ([_special("model/dev", tarfile.CHRTYPE)], "model/dev", "device"),
    "fifo": ([_special("model/pipe", tarfile.FIFOTYPE)], "model/pipe", "FIFO"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE_TAR))
@pytest.mark.parametrize("suffix", [".tar.gz", ".tar"])
def test_unsafe_tar_entries_are_refused_and_nothing_is_extracted(tmp_path, case, suffix):
    members, entry, reason = UNSAFE_TAR[case]
    # A harmless entry first: a refusal must not leave it behind either.
    archive = _tar(
        tmp_path / f"evil{suffix}", [_file(*GOOD), *members], "w:gz" if suffix == ".tar.gz" else "w"
    )
    work = tmp_path / "work"
    work.mkdir()
    target = work / "out"
    with pytest.raises(StorageError) as err:
        extract_archive(archive, target, label=f"gs://b/evil{suffix}")
    message = str(err.value)
    assert f"gs://b/evil{suffix}" in message and entry in message and reason in message
    assert "\n" not in message
    assert not target.exists()
    assert list(work.iterdir()) == []
    assert not (tmp_path / "escaped.txt").exists()
    assert not Path("/tmp/kfp-tfserving-abs-escape.txt").exists()


UNSAFE_ZIP = {
    "dotdot": ([("../escaped.txt", b"pwned")], "../escaped.txt", "'..'"),
    "backslash-dotdot": ([("..\\escaped.txt", b"pwned")], "..\\escaped.txt", "'..'"),
    "absolute": ([("/tmp/kfp-tfserving-abs-escape.txt", b"pwned")], "/tmp/kfp-tfserving-abs", "absolute"),
    "drive": ([("C:/escaped.txt", b"pwned")], "C:/escaped.txt", "absolute"),
    "symlink": ([_zip_symlink("model/link", "/etc/passwd")], "model/link", "symbolic link"),
    "fifo": ([_zip_fifo("model/pipe")], "model/pipe", "FIFO"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE_ZIP))
def test_unsafe_zip_entries_are_refused_and_nothing_is_extracted(tmp_path, case):
    entries, entry, reason = UNSAFE_ZIP[case]
    archive = _zip(tmp_path / "evil.zip", [GOOD, *entries])
    target = tmp_path / "work" / "out"
    with pytest.raises(StorageError) as err:
        extract_archive(archive, target)
    message = str(err.value)
    assert "evil.zip" in message and entry in message and reason in message
    assert not target.exists()
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "work" / "escaped.txt").exists()
    assert not Path("/tmp/kfp-tfserving-abs-escape.txt").exists()


def test_encrypted_zip_entry_is_refused(tmp_path):
    archive = _zip(tmp_path / "locked.zip", [GOOD])
    raw = bytearray(archive.read_bytes())
    # Set the "encrypted" flag bit in the central directory, the way password-protected archives do.
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 8] |= 0x1
    archive.write_bytes(bytes(raw))
    with pytest.raises(StorageError, match="model/ok.txt' is encrypted"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_a_highly_compressible_bomb_is_refused_before_it_is_written(tmp_path, suffix):
    zeros = bytes(4 * MB)
    if suffix == ".zip":
        archive = _zip(tmp_path / "bomb.zip", [("model/zeros.bin", zeros)])
    else:
        archive = _tar(tmp_path / "bomb.tar.gz", [_file("model/zeros.bin", zeros)])
    assert archive.stat().st_size < 64 * 1024  # it really is a bomb: tiny on disk
    with pytest.raises(StorageError) as err:
        extract_archive(archive, tmp_path / "out", max_bytes=1 * MB)
    assert f"bomb{suffix}" in str(err.value) and "model/zeros.bin" in str(err.value)
    assert "1.0 MB limit" in str(err.value) and archives.MAX_BYTES_ENV in str(err.value)
    assert not (tmp_path / "out").exists()


def test_the_limit_counts_all_entries_together_and_comes_from_the_environment(tmp_path, monkeypatch):
    archive = _tar(tmp_path / "many.tgz", [_file(f"m/{i}.bin", os.urandom(100_000)) for i in range(12)])
    monkeypatch.setenv(archives.MAX_BYTES_ENV, str(1 * MB))
    with pytest.raises(StorageError, match=r"expands past .* \(at entry 'm/10.bin'\)"):
        extract_archive(archive, tmp_path / "out")
    monkeypatch.setenv(archives.MAX_BYTES_ENV, str(2 * MB))
    assert extract_archive(archive, tmp_path / "out2").files == 12


def test_a_bad_limit_in_the_environment_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(archives.MAX_BYTES_ENV, "20G")
    with pytest.raises(StorageError, match="KFP_TFSERVING_MAX_EXTRACT_BYTES='20G' is not a number"):
        max_extract_bytes()
    monkeypatch.delenv(archives.MAX_BYTES_ENV)
    assert max_extract_bytes() == 20 * 1024**3
    assert max_extract_bytes(123) == 123


def test_too_many_entries_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(archives, "MAX_ENTRIES", 5)
    archive = _zip(tmp_path / "inodes.zip", [(f"m/{i}", b"") for i in range(6)])
    with pytest.raises(StorageError, match="more than 5 entries"):
        extract_archive(archive, tmp_path / "out")


def test_a_zip_header_understating_its_data_is_refused(tmp_path):
    archive = _zip(tmp_path / "liar.zip", [("model/data.bin", os.urandom(300_000))])
    raw = bytearray(archive.read_bytes())
    # Claim 1000 uncompressed bytes in both the local header and the central directory.
    local = raw.find(b"PK\x03\x04")
    raw[local + 22 : local + 26] = struct.pack("<I", 1000)
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 24 : cd + 28] = struct.pack("<I", 1000)
    archive.write_bytes(bytes(raw))
    with pytest.raises(StorageError, match="liar.zip"):
        extract_archive(archive, tmp_path / "out", max_bytes=100_000)
    assert not (tmp_path / "out").exists()


def test_writing_stops_when_an_entry_outgrows_its_header_or_the_budget(tmp_path):
    """The byte count while writing is the last line of defence when a reader trusts a lying header."""
    entry = Entry("model/w.bin", "file", 10)
    with pytest.raises(StorageError, match="more data than its header declares"):
        archives._write(io.BytesIO(b"x" * 11), tmp_path / "a", entry, "x.zip", budget=100, limit=100)
    with pytest.raises(StorageError, match="expands past"):
        archives._write(io.BytesIO(b"x" * 10), tmp_path / "b", entry, "x.zip", budget=9, limit=100)
    assert archives._write(io.BytesIO(b"x" * 10), tmp_path / "c", entry, "x.zip", 10, 100) == 10


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_truncated_archive_is_a_clear_error(tmp_path, suffix):
    payload = [("model/data.bin", os.urandom(200_000))]
    if suffix == ".zip":
        archive = _zip(tmp_path / f"cut{suffix}", payload)
    else:
        archive = _tar(tmp_path / f"cut{suffix}", [_file(*payload[0])])
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(StorageError, match=rf"cut{suffix}: not a readable"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("suffix", [".tar.gz", ".tgz", ".tar", ".zip"])
def test_good_archives_of_a_keras_file_and_a_saved_model_unpack_identically(
    tmp_path, suffix, keras_two_io, tf2_saved_model
):
    archive = tmp_path / f"models{suffix}"
    if suffix == ".zip":
        with zipfile.ZipFile(archive, "w") as zf:
            zf.write(keras_two_io, "bundle/two_io.keras")
            for p in tf2_saved_model.rglob("*"):
                zf.write(p, f"bundle/linear/{p.relative_to(tf2_saved_model).as_posix()}")
    else:
        with tarfile.open(archive, "w" if suffix == ".tar" else "w:gz") as tar:
            tar.add(keras_two_io, "bundle/two_io.keras")
            tar.add(tf2_saved_model, "bundle/linear")
    result = extract_archive(archive, tmp_path / "out")
    out = tmp_path / "out" / "bundle"
    assert (out / "two_io.keras").read_bytes() == keras_two_io.read_bytes()
    assert _tree_digest(out / "linear") == _tree_digest(tf2_saved_model)
    expected_files = 1 + len(_tree_digest(tf2_saved_model))
    assert result.files == expected_files
    assert result.size == sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert result.kind == {".tgz": "tar.gz"}.get(suffix, suffix[1:])


def test_macos_resource_folders_are_left_out(tmp_path):
    archive = _zip(tmp_path / "mac.zip", [("m/model.h5", b"x"), ("__MACOSX/m/._model.h5", b"junk")])
    extract_archive(archive, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["m"]


def test_archive_kind_by_name_then_by_magic_bytes_but_never_a_keras_file(tmp_path, keras_two_io):
    assert archive_kind(keras_two_io) is None  # a .keras file is a zip, but it is the model
    tgz = _tar(tmp_path / "x.tgz", [_file("a", b"1")])
    nameless = tmp_path / "1"
    nameless.write_bytes(tgz.read_bytes())
    plain_tar = tmp_path / "2"
    plain_tar.write_bytes(_tar(tmp_path / "y.tar", [_file("a", b"1")], "w").read_bytes())
    zipped = tmp_path / "3"
    zipped.write_bytes(_zip(tmp_path / "z.zip", [("a", b"1")]).read_bytes())
    noise = tmp_path / "weights.pb"
    noise.write_bytes(os.urandom(2048))
    assert [archive_kind(p) for p in (tgz, nameless, plain_tar, zipped, noise)] == [
        "tar.gz",
        "tar.gz",
        "tar",
        "zip",
        None,
    ]
    assert archive_kind(tmp_path) is None


def test_archive_stem():
    assert [archive_stem(n) for n in ("resnet.tar.gz", "a.b.tgz", "m.ZIP", "1", ".zip")] == [
        "resnet",
        "a.b",
        "m",
        "1",
        ".zip",
    ]


def test_a_file_and_a_folder_of_the_same_name_are_refused(tmp_path):
    archive = _tar(tmp_path / "clash.tar.gz", [_file("m", b"file"), _file("m/x", b"under a file")])
    with pytest.raises(StorageError, match="clash.tar.gz: entry 'm/x' clashes with another entry"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
