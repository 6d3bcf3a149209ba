"""Reliability of the publish protocol: concurrent pushes, pushes killed with SIGKILL at random moments."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import push_models

from kfp_tfserving.components.common.storage import storage_for
from kfp_tfserving.components.push_to_serving.manifest import build_manifest
from kfp_tfserving.components.push_to_serving.publisher import PushOptions, publish
from kfp_tfserving.components.push_to_serving.versions import (
    STAGING_PREFIX,
    inspect_version,
    numeric_versions,
)

# A push in its own process: imports first (TensorFlow too), says "ready", pushes when told (a line on stdin), prints
# "<version> <seconds the push took>".
CHILD = """
import sys, time
from pathlib import Path
from kfp_tfserving.components.common.tfenv import import_tensorflow
from kfp_tfserving.components.push_to_serving.publisher import PushOptions, publish
import_tensorflow()  # the model fingerprint needs it; importing it is not part of the push protocol
print("ready", flush=True)
sys.stdin.readline()
start = time.monotonic()
result = publish(Path(sys.argv[1]), sys.argv[2], options=PushOptions(force=True))
print(result.version, time.monotonic() - start, flush=True)
"""

tiny_models = push_models.tiny_models  # session fixtures: tiny SavedModels
tiny_model = push_models.tiny_model


def _start_child(model: Path, base: str) -> subprocess.Popen:
    return push_models.start_waiting_child(CHILD, str(model), base)


def _concurrent_pushes(models: list[Path], base: str) -> dict[int, Path]:
    children = [_start_child(model, base) for model in models]
    for child in children:  # all are imported and waiting: release them together
        push_models.go(child)
    claimed = {}
    for child, model in zip(children, models, strict=True):
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
        claimed[int(out.splitlines()[-1].split()[0])] = model
    return claimed


def _assert_each_version_is_its_model(base: str, claimed: dict[int, Path]) -> None:
    storage = storage_for(base)
    assert numeric_versions(storage, base) == sorted(claimed)
    for number, model in claimed.items():
        info = inspect_version(storage, base, number, deep=True)
        assert info.verified, (number, info.problems)
        assert info.manifest.content_digest == build_manifest(model, {}).content_digest


def test_eight_concurrent_pushes_local(tmp_path, tiny_models):
    base = str(tmp_path / "m")
    claimed = _concurrent_pushes(tiny_models, base)
    assert sorted(claimed) == list(range(1, 9))  # 8 distinct versions, none lost
    _assert_each_version_is_its_model(base, claimed)
    assert [p for p in Path(base).iterdir() if p.name.startswith(".")] == []


def test_eight_concurrent_pushes_gcs(gcs_server, tiny_models):
    base = f"gs://{gcs_server.new_bucket()}/m"
    claimed = _concurrent_pushes(tiny_models, base)
    assert len(claimed) == 8 and sorted(claimed) == list(range(1, 9))
    _assert_each_version_is_its_model(base, claimed)
    names = storage_for(base).list_dir(base)
    assert [n for n in names if n.startswith(STAGING_PREFIX)] == []


def _only_complete_versions(base: Path) -> None:
    """What TF Serving would see: every numeric directory holds a complete, verified version."""
    storage = storage_for(str(base))
    for number in numeric_versions(storage, str(base)):
        info = inspect_version(storage, str(base), number)
        assert info.verified, (number, info.problems)


def test_pushes_killed_at_random_moments_leave_only_complete_versions(tmp_path, tiny_models):
    base = tmp_path / "m"
    calibration = _start_child(tiny_models[0], str(base))
    push_models.go(calibration)
    out, err = calibration.communicate(timeout=120)
    assert calibration.returncode == 0, err
    push_seconds = float(out.splitlines()[-1].split()[1])
    rng = random.Random(20240501)
    outcomes = {"killed": 0, "finished": 0, "left_staging": 0}
    attempt = 0
    # A child that finishes first does not count; most of a tiny push is spent before its staging directory
    # exists, so go on (within bounds) until at least one kill has landed mid-copy.
    while (outcomes["killed"] < 20 or not outcomes["left_staging"]) and attempt < 80:
        attempt += 1
        child = _start_child(tiny_models[attempt % 8], str(base))
        push_models.go(child)
        time.sleep(rng.uniform(0, push_seconds))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        outcomes["killed" if child.returncode == -signal.SIGKILL else "finished"] += 1
        _only_complete_versions(base)
        outcomes["left_staging"] += any(p.name.startswith(STAGING_PREFIX) for p in base.iterdir())
        # The next push succeeds and removes what the dead one left behind.
        result = publish(tiny_models[(attempt + 1) % 8], str(base), options=PushOptions(force=True, keep=3))
        assert result.published
        _only_complete_versions(base)
        assert [p.name for p in base.iterdir() if not p.name.isdigit()] == []
    assert outcomes["killed"] >= 20, outcomes
    assert outcomes["left_staging"] >= 1, outcomes  # some kills did land mid-push
