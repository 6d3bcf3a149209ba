"""`kfp-tfserving push`, `versions` and `rollback` as a user runs them."""

from __future__ import annotations

import json

import push_models
from conftest import published_versions, run_cli

tiny_models = push_models.tiny_models  # session fixtures: tiny SavedModels
tiny_model = push_models.tiny_model


def test_push_versions_rollback(tmp_path, tiny_models):
    base = tmp_path / "serving" / "tiny"
    config = tmp_path / "models.config"
    first = run_cli("push", str(tiny_models[0]), "--base-path", str(base), "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout.splitlines()[-1])["version"] == 1
    labelled = run_cli(
        "push",
        str(tiny_models[1]),
        "--base-path",
        str(base),
        "--models-config",
        str(config),
        "--label",
        "canary",
    )
    assert labelled.returncode == 0, labelled.stderr and "published version 2" in labelled.stdout

    listed = run_cli("versions", str(base), "--models-config", str(config), "--json")
    rows = json.loads(listed.stdout)
    assert [(r["version"], r["labels"], r["verified"]) for r in rows] == [
        (1, [], True),
        (2, ["canary"], True),
    ]
    assert all(r["size"] > 0 and r["time"] for r in rows)

    (base / "1" / "saved_model.pb").write_bytes(b"damaged")
    rows = json.loads(run_cli("versions", str(base), "--json").stdout)
    assert (rows[0]["verified"], rows[0]["problem"]) == (False, "saved_model.pb: size or crc32c differs")
    assert rows[1]["verified"]
    table = run_cli("versions", str(base)).stdout
    assert table.count("yes") == 1 and "no (saved_model.pb" in table.replace("\n", " ")

    refused = run_cli("rollback", str(base))
    assert refused.returncode == 2 and "does not match its manifest" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert published_versions(base) == [1, 2]


def test_push_errors_are_one_line(tmp_path, tiny_model):
    missing = run_cli("push", str(tmp_path / "nope"), "--base-path", str(tmp_path / "b"))
    assert missing.returncode == 2 and "not a directory" in missing.stderr
    no_config = run_cli("push", str(tiny_model), "--base-path", str(tmp_path / "b"), "--label", "stable")
    assert no_config.returncode == 2 and "needs --models-config" in no_config.stderr
    assert len(no_config.stderr.strip().splitlines()) == 1
    assert published_versions(tmp_path / "b") == []
    rolled = run_cli("rollback", str(tmp_path / "b"), "--to", "3")
    assert rolled.returncode == 2 and "no version 3" in rolled.stderr
