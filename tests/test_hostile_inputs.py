"""Hostile and malformed inputs: each is refused with one readable line, nothing published or written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from kfp_tfserving.components.export_savedmodel.exporter import export_model
from kfp_tfserving.components.load_model.loader import load_source


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


def one_error_line(proc) -> str:
    """The CLI's refusal: exit code != 0, one `error:` line, no traceback, no `unexpected`."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert lines and lines[-1].startswith("error: "), proc.stderr
    assert "unexpected" not in lines[-1], lines[-1]
    return lines[-1]


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


__all__ = ["one_error_line", "run_cli", "snapshot"]
