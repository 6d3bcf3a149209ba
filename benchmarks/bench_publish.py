"""1. Publish throughput: `kfp-tfserving push` vs `cp -r` locally, vs a plain transfer-manager upload to GCS."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

from benchmarks.measure import Series, check, run_process

CLI = [sys.executable, "-m", "kfp_tfserving.pipelines.cli"]


def push_seconds(model: Path, base: str) -> float:
    return check(run_process([*CLI, "push", str(model), "--base-path", base, "--json"]), "push").seconds


def _sha256_seconds(model: Path) -> float:
    start = time.perf_counter()
    for path in sorted(p for p in model.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(8 << 20):
                digest.update(chunk)
    return time.perf_counter() - start


def local_publish(model: Path, scratch: Path, runs: int) -> dict:
    push, cp, cp_sync, sha = Series(), Series(), Series(), Series()
    for i in range(runs):
        base, copy = scratch / f"base{i}", scratch / f"copy{i}"
        # Alternate the order so neither side always runs with the warmer cache.
        order = [("push", base), ("cp", copy)] if i % 2 == 0 else [("cp", copy), ("push", base)]
        for what, target in order:
            os.sync()  # neither side pays for the other's dirty pages
            if what == "push":
                push.values.append(push_seconds(model, str(base / "model")))
            else:
                cp.values.append(check(run_process(["cp", "-r", str(model), str(target)]), "cp").seconds)
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(copy, ignore_errors=True)
        os.sync()
        # cp with the durability a push gives: the data is on disk before the command returns.
        durable = check(run_process(["sh", "-c", f"cp -r '{model}' '{copy}' && sync"]), "cp + sync")
        cp_sync.values.append(durable.seconds)
        shutil.rmtree(copy, ignore_errors=True)
        sha.values.append(_sha256_seconds(model))
    return {
        "push_seconds": push.summary(),
        "cp_seconds": cp.summary(),
        "cp_sync_seconds": cp_sync.summary(),
        # The manifest needs every byte's sha256: hashing alone bounds how close a push can come to cp.
        "sha256_only_seconds": sha.summary(),
        "throughput_ratio": cp.median / push.median,  # push throughput relative to cp's
        "goal": ">= 0.9",
    }


@contextlib.contextmanager
def gcs_emulator():
    """The same loopback emulator (with GCS preconditions enforced) the tests use."""
    tests_dir = str(Path(__file__).resolve().parents[1] / "tests")
    sys.path.insert(0, tests_dir)
    try:
        import storage_servers

        with storage_servers.serve_object_store("gcs") as server:
            yield server
    finally:
        sys.path.remove(tests_dir)


_UPLOAD_SCRIPT = """
import os, sys
from pathlib import Path
from google.cloud.storage import Client, transfer_manager
root, bucket, prefix = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
names = [p.relative_to(root).as_posix() for p in root.rglob('*') if p.is_file()]
results = transfer_manager.upload_many_from_filenames(
    Client().bucket(bucket), names, source_directory=str(root), blob_name_prefix=prefix + '/',
    worker_type=transfer_manager.THREAD, max_workers=8)
bad = [r for r in results if isinstance(r, Exception)]
sys.exit(1 if bad else 0)
"""


def gcs_publish(model: Path, runs: int) -> dict:
    push, plain = Series(), Series()
    with gcs_emulator() as server:
        bucket = server.new_bucket()
        for i in range(runs):
            push.values.append(push_seconds(model, f"gs://{bucket}/pushed{i}/model"))
            upload = [sys.executable, "-c", _UPLOAD_SCRIPT, str(model), bucket, f"plain{i}"]
            plain.values.append(check(run_process(upload, env=server.env), "transfer-manager upload").seconds)
    return {
        "push_seconds": push.summary(),
        "transfer_manager_seconds": plain.summary(),
        "throughput_ratio": plain.median / push.median,
        "goal": ">= 1.0",
    }
