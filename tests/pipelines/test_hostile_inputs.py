"""Hostile and malformed inputs: each is refused with one readable line, nothing published or written."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import push_models
import pytest
from conftest import one_error_line, run_cli

from kfp_tfserving.components.common.archives import MAX_BYTES_ENV
from kfp_tfserving.components.common.errors import StorageError, UserError
from kfp_tfserving.components.common.tfenv import QUIET_ENV
from kfp_tfserving.components.export_savedmodel.exporter import export_model
from kfp_tfserving.components.load_model.loader import load_source

tiny_models = push_models.tiny_models  # session fixtures: tiny SavedModels
tiny_model = push_models.tiny_model


def snapshot(root: Path) -> dict[str, str]:
    """Every entry below root with its content hash (directories and links by kind): byte-for-byte state."""
    if not root.exists():
        return {}
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = "link:" + str(p.readlink())
        elif p.is_dir():
            out[rel] = "dir"
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "special"
    return out


def _clean_checkpoint(tf, directory: Path) -> Path:
    v1 = tf.compat.v1
    directory.mkdir(parents=True)
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as session:
        x = v1.placeholder(tf.float32, [None, 3], name="x")
        w = v1.get_variable("w", initializer=np.ones((3, 2), np.float32))
        tf.identity(tf.matmul(x, w), name="y")
        session.run(v1.global_variables_initializer())
        v1.train.Saver().save(session, str(directory / "model.ckpt"))
    return directory


@pytest.mark.parametrize("given", ["model.ckpt.meta", "model.ckpt.index"])
def test_a_checkpoint_given_by_its_meta_or_index_file_loads_with_its_variables(tmp_path, tf, given):
    ckpt = _clean_checkpoint(tf, tmp_path / "ckpt")
    (ckpt / "model.ckpt-other.index").write_bytes(b"not ours")  # another prefix: not fetched
    fetched, meta = tmp_path / "fetched", {}
    load_source(str(ckpt / given), fetched, meta)
    assert meta["format"] == "checkpoint" and meta["entry"] == "model.ckpt.meta"
    assert sorted(p.name for p in fetched.iterdir()) == [
        "model.ckpt.data-00000-of-00001",
        "model.ckpt.index",
        "model.ckpt.meta",
    ]
    export_meta: dict = {}
    export_model(fetched, meta, tmp_path / "exported", export_meta)
    assert export_meta["parity_passed"] is True


# ---- arguments the CLI refuses before the pipeline starts (4, 9) --------------------------------------


def cli_in(workdir: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """The CLI run from workdir with its own $TMPDIR, which must be left empty."""
    tmp = workdir.parent / "tmpdir"
    tmp.mkdir(exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "kfp_tfserving.pipelines.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=workdir,
        env={**os.environ, **QUIET_ENV, "TMPDIR": str(tmp)},
    )
    assert snapshot(tmp) == {}, "left behind in $TMPDIR"
    return proc


def _bad_samples(root: Path) -> dict[str, Path]:
    corrupt = root / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is no zip archive")
    nested = root / "nested.json"
    nested.write_text('{"inputs": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}")
    return {"corrupt": corrupt, "nested": nested}


CASES = {
    "empty-base-path": (["--base-path", ""], "--base-path is empty"),
    "base-path-is-a-file": (["--base-path", "{file}"], "is a file, not a directory"),
    "base-path-under-a-file": (["--base-path", "{file}/models/m"], "is a file, so nothing can be created"),
    "version-past-int64": (
        ["--version-policy", "explicit", "--version", str(2**63)],
        "outside 1 … 9223372036854775807",
    ),
    "version-zero": (["--version-policy", "explicit", "--version", "0"], "needs a positive --version"),
    "model-name-escape": (["--model-name", "../escape"], "--model-name '../escape': not a name"),
    "model-name-dot": (["--model-name", ".hidden"], "--model-name '.hidden': not a name"),
    "corrupt-sample": (["--sample", "{corrupt}"], "corrupt.npz: cannot read the sample"),
    "nested-sample": (["--sample", "{nested}"], "nested.json: cannot read the sample (nested too deeply)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_run_refuses_bad_arguments_up_front(tmp_path, tf2_saved_model, case):
    work = tmp_path / "work"
    work.mkdir()
    (work / "a-file").write_text("not a directory")
    names = {"file": str(work / "a-file"), **{k: str(v) for k, v in _bad_samples(tmp_path).items()}}
    args, complaint = CASES[case]
    args = [a.format(**names) for a in args]
    if "--base-path" not in args:
        args += ["--base-path", str(work / "serving" / "m")]
    before = snapshot(work)
    line = one_error_line(cli_in(work, "run", str(tf2_saved_model), *args))
    assert complaint in line, line
    assert "full log" not in line  # refused before any step ran
    assert snapshot(work) == before


def test_a_fifo_or_a_device_as_source_gets_its_own_message(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    fifo = tmp_path / "model.h5"
    os.mkfifo(fifo)
    before = snapshot(work)
    assert "is a named pipe (FIFO)" in one_error_line(cli_in(work, "run", str(fifo), "--base-path", "s/m"))
    assert "is a device" in one_error_line(cli_in(work, "run", "/dev/null", "--base-path", "s/m"))
    assert snapshot(work) == before


def test_a_sample_of_the_wrong_shape_names_the_users_path_input_and_shapes(tmp_path, tf2_saved_model):
    sample = tmp_path / "user-sample.npz"
    np.savez(sample, x=np.zeros((2, 7), np.float32))
    fetched, meta = tmp_path / "fetched", {}
    load_source(str(tf2_saved_model), fetched, meta)
    with pytest.raises(UserError) as err:
        export_model(fetched, meta, tmp_path / "exported", {}, sample_uri=str(sample))
    assert err.value.one_line().startswith(
        f"{sample}: input 'x' has shape (2, 7), the signature expects (-1, 4)"
    )


# ---- special files in model directories (3) ----------------------------------------------------------


def _model_copy(source: Path, root: Path) -> Path:
    copy = root / "model"
    shutil.copytree(source, copy)
    return copy


@pytest.mark.parametrize("target", ["/dev/zero", "/etc/hostname"])
def test_a_link_leaving_the_model_directory_is_refused_before_any_copy(tmp_path, tf2_saved_model, target):
    model = _model_copy(tf2_saved_model, tmp_path)
    (model / "assets").mkdir(exist_ok=True)
    (model / "assets" / "table.bin").symlink_to(target)
    with pytest.raises(StorageError) as err:
        load_source(str(model), tmp_path / "artifact", {})
    assert "assets/table.bin is a symbolic link leading outside the model directory" in err.value.one_line()
    assert not (tmp_path / "artifact").exists() or not any((tmp_path / "artifact").iterdir())


def test_a_link_inside_the_model_directory_is_followed(tmp_path, tf2_saved_model):
    model = _model_copy(tf2_saved_model, tmp_path)
    (model / "assets").mkdir(exist_ok=True)
    (model / "assets" / "vocab.txt").write_text("a\nb\n")
    (model / "assets" / "alias.txt").symlink_to("vocab.txt")
    load_source(str(model), tmp_path / "artifact", {})
    assert (tmp_path / "artifact" / "model" / "assets" / "alias.txt").read_text() == "a\nb\n"


def test_a_fifo_in_a_model_directory_fails_at_once_instead_of_hanging(tmp_path, tf2_saved_model):
    work = tmp_path / "work"
    work.mkdir()
    model = _model_copy(tf2_saved_model, tmp_path)
    (model / "assets").mkdir(exist_ok=True)
    os.mkfifo(model / "assets" / "vocab.txt")
    base = work / "serving" / "m"
    line = one_error_line(cli_in(work, "run", str(model), "--base-path", str(base), timeout=120))
    assert "assets/vocab.txt is a named pipe (FIFO)" in line
    assert not base.exists()


def test_the_size_cap_applies_to_directory_copies(tmp_path, tf2_saved_model, monkeypatch):
    monkeypatch.setenv(MAX_BYTES_ENV, "1000")
    with pytest.raises(
        StorageError, match=r"larger than 1000 bytes .*raise \$KFP_TFSERVING_MAX_EXTRACT_BYTES"
    ):
        load_source(str(tf2_saved_model), tmp_path / "artifact", {})


# ---- push checks what it publishes (3, 5) --------------------------------------------------------------


@pytest.fixture
def base_with_version(tmp_path, tiny_model) -> Path:
    base = tmp_path / "serving" / "m"
    assert run_cli("push", str(tiny_model), "--base-path", str(base)).returncode == 0
    return base


def _broken(kind: str, model: Path) -> None:
    if kind == "truncated-pb":
        pb = model / "saved_model.pb"
        pb.write_bytes(pb.read_bytes()[: pb.stat().st_size // 2])
    elif kind == "missing-data-shard":
        for data in (model / "variables").glob("variables.data-*"):
            data.unlink()
    elif kind == "missing-variables":
        shutil.rmtree(model / "variables")
    elif kind == "fifo":
        os.mkfifo(model / "assets.extra")
    elif kind == "link-out":
        (model / "variables" / "extra").symlink_to("/dev/zero")


PUSH_CASES = {
    "truncated-pb": "saved_model.pb: not a valid SavedModel proto",
    "missing-data-shard": "variables.index is there but no variables.data-* file",
    "missing-variables": "the graph has variables but variables/variables.index is missing",
    "fifo": "assets.extra is a named pipe (FIFO)",
    "link-out": "variables/extra is a symbolic link leading outside",
}


@pytest.mark.parametrize("kind", sorted(PUSH_CASES))
def test_push_refuses_what_tf_serving_could_not_load(tmp_path, tiny_model, base_with_version, kind):
    model = _model_copy(tiny_model, tmp_path)
    _broken(kind, model)
    before = snapshot(base_with_version.parent)
    line = one_error_line(run_cli("push", str(model), "--base-path", str(base_with_version), timeout=120))
    assert PUSH_CASES[kind] in line, line
    assert snapshot(base_with_version.parent) == before


def test_push_refuses_a_model_without_serving_default(
    tmp_path, tf2_saved_model_no_default, base_with_version
):
    before = snapshot(base_with_version.parent)
    line = one_error_line(
        run_cli("push", str(tf2_saved_model_no_default), "--base-path", str(base_with_version))
    )
    assert "has no serving_default signature (has ['embed', 'predict'])" in line
    assert snapshot(base_with_version.parent) == before


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--version-policy", "explicit", "--version", str(2**63)], "outside 1 … 9223372036854775807"),
        (["--model-name", "../escape"], "not a name TF Serving can serve"),
    ],
)
def test_push_validates_its_arguments(tmp_path, tiny_model, base_with_version, args, complaint):
    before = snapshot(base_with_version.parent)
    line = one_error_line(run_cli("push", str(tiny_model), "--base-path", str(base_with_version), *args))
    assert complaint in line
    assert snapshot(base_with_version.parent) == before


def test_push_into_a_base_path_that_is_a_file_says_so(tmp_path, tiny_model):
    afile = tmp_path / "a-file"
    afile.write_text("x")
    line = one_error_line(run_cli("push", str(tiny_model), "--base-path", str(afile / "m")))
    assert "is a file, so nothing can be created below it" in line
    assert afile.read_text() == "x"
