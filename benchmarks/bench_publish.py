"""1. Publish throughput: `kfp-tfserving push` locally vs `cp -r && sync` and vs TFX's own Pusher, and vs a
plain parallel upload to GCS/S3.

Every comparison is paired: ours and the references run once per round, the order reversed each round
(ours first, then last, ...), and the figure is the median of the per-round ratios, with min and max. The
page cache is put in the same state before each side (dropped when permitted, else pre-warmed by reading
the source).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

from benchmarks.measure import (
    MEMORY_SETTLED,
    Paired,
    Series,
    check,
    run_process,
    settle_cache,
    wait_for_memory_handback,
)

# The push step as a pipeline runs it: a fresh process publishing a checked model, whose model fingerprint
# the check step already computed (so the push imports no TensorFlow). `kfp-tfserving push` on its own
# computes the fingerprint first (one TensorFlow import, about 3 s more).
PUSH_STEP = [
    sys.executable,
    "-c",
    "import json, sys\n"
    "from pathlib import Path\n"
    "from kfp_tfserving.components.push_to_serving.publisher import PushOptions, publish\n"
    "r = publish(Path(sys.argv[1]), sys.argv[2], source={'model_fingerprint': 'tfserving-v1:bench'},"
    " options=PushOptions())\n"
    "print(json.dumps({'version': r.version, 'published': r.published}))",
]
UPLOAD_WORKERS = 8  # the push's parallelism (components/common/storage/base.py), given to the reference too
_TIMINGS = re.compile(
    r"upload ([\d.]+) s, promote ([\d.]+) s \(files without saved_model.pb for ([\d.]+) s\)"
)


# TFX's Pusher as a TFX component runs it: a fresh process importing TFX and calling the Pusher executor's Do()
# with a Model artifact (TFX serves `<uri>/Format-Serving`) and a filesystem push destination. Do() copies the
# model to `<base>/<unix time>/` (saved_model.pb last) and again to the PushedModel artifact's URI.
TFX_PUSHER = """
import json, sys, time
started = time.perf_counter()
from tfx.components.pusher import executor
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils
imported = time.perf_counter()
model, pushed = standard_artifacts.Model(), standard_artifacts.PushedModel()
model.uri, base, pushed.uri = sys.argv[1:4]
destination = pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=base))
executor.Executor().Do({'model': [model]}, {'pushed_model': [pushed]},
                       {'push_destination': proto_utils.proto_to_json(destination)})
if pushed.get_int_custom_property('pushed') != 1:
    sys.exit('the Pusher did not push')
print(json.dumps({'import': imported - started, 'do': time.perf_counter() - imported}))
"""
TFX_REFERENCE = "TFX 1.21 Pusher executor (fresh process) && sync"


def compiled_bytecode(scratch: Path) -> dict[str, str]:
    """Environment in which our step runs from compiled bytecode, as in the image (pip compiles the wheel at
    install). An editable checkout under PYTHONDONTWRITEBYTECODE would compile the project's modules from
    source on every run, about 20 ms no deployed step pays."""
    return {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(scratch / "pycache")}


def push(model: Path, base: str, env: dict | None = None):
    return check(run_process([*PUSH_STEP, str(model), base], env=env), "push")


def tfx_installed() -> bool:
    return importlib.util.find_spec("tfx") is not None


def _tfx_model_artifact(model: Path, scratch: Path) -> Path:
    """A Model artifact directory whose Format-Serving is the model itself (a symlink: the same files)."""
    uri = scratch / f"tfx-artifact-{model.name}"
    uri.mkdir(parents=True, exist_ok=True)
    serving = uri / "Format-Serving"
    if not serving.is_symlink():
        serving.symlink_to(model.resolve(), target_is_directory=True)
    return uri


# Each side's program, run once after the page cache is dropped: the model's bytes start cold and the
# program's code warm, as on a node that has run the step's image before. Without it, a dropped cache made
# the push's interpreter (and the Pusher's TensorFlow) load from disk: seconds of the benchmark measuring
# the disk's random reads of library files, not a publish.
_WARM = {
    "ours": [sys.executable, "-c", "import kfp_tfserving.components.push_to_serving.publisher"],
    "cp": ["sh", "-c", "cp --version && sync --version"],
    # The Pusher script's imports, and TensorFlow, which TFX's file I/O loads on first use.
    "tfx": [
        sys.executable,
        "-c",
        "import tensorflow, tfx.components.pusher.executor, tfx.proto.pusher_pb2, tfx.types.standard_artifacts",
    ],
}


def _settle(model: Path, side: str, env: dict | None = None, memory: str = "as-is") -> str:
    cache = settle_cache([model])
    check(run_process(_WARM[side], env=env), f"warming {side}")
    state = f"{cache}; then each side's program run once (its code warm, the model's bytes not)"
    if memory == "settled" and wait_for_memory_handback():
        state += f"; {MEMORY_SETTLED}"
    return state


def local_publish(model: Path, scratch: Path, pairs: int, memory: str = "as-is") -> dict[str, dict]:
    """{"cp": row, "tfx": row}: ours against `cp -r && sync` and against TFX's Pusher (when TFX is installed,
    `make tfx`), all three in the same rounds. `memory`: "settled" waits before each side until the VM has
    handed its free memory back to the host (measure.wait_for_memory_handback); "as-is" starts at once."""
    state = {}
    counter = iter(range(10**6))
    tfx_phases: dict[str, Series] = {"import": Series(), "do": Series()}

    bytecode = compiled_bytecode(scratch)

    def ours() -> float:
        target = scratch / f"base{next(counter)}"
        state["cache"] = _settle(model, "ours", bytecode, memory)
        seconds = push(model, str(target / "model"), env=bytecode).seconds
        shutil.rmtree(target, ignore_errors=True)
        return seconds

    def cp() -> float:  # the same durability as a push: on disk before the command returns
        target = scratch / f"copy{next(counter)}"
        state["cache"] = _settle(model, "cp", memory=memory)
        seconds = check(
            run_process(["sh", "-c", f"cp -r '{model}' '{target}' && sync"]), "cp && sync"
        ).seconds
        shutil.rmtree(target, ignore_errors=True)
        return seconds

    def tfx() -> float:  # the Pusher does not fsync: `sync` gives it the push's durability
        target = scratch / f"tfx{next(counter)}"
        argv = [
            sys.executable,
            "-c",
            TFX_PUSHER,
            str(artifact),
            str(target / "model"),
            str(target / "pushed"),
        ]
        state["cache"] = _settle(model, "tfx", memory=memory)
        run = check(run_process(["sh", "-c", '"$@" && sync', "sh", *argv]), "TFX Pusher")
        for phase, seconds in json.loads(run.stdout.strip().splitlines()[-1]).items():
            tfx_phases[phase].values.append(seconds)
        shutil.rmtree(target, ignore_errors=True)
        return run.seconds

    references = {"cp": cp}
    if tfx_installed():
        artifact = _tfx_model_artifact(model, scratch)
        references["tfx"] = tfx
    else:
        print("TFX is not installed (make tfx): the TFX Pusher row is left out", file=sys.stderr)
    paired = Paired.against(ours, references, pairs)
    rows = {
        "cp": {**paired["cp"].summary(">= 0.9"), "reference": "cp -r && sync", "page_cache": state["cache"]}
    }
    if "tfx" in paired:
        rows["tfx"] = {
            **paired["tfx"].summary(">= 1.0"),
            "reference": TFX_REFERENCE,
            "phases_seconds": {k: v.summary() for k, v in tfx_phases.items()},
        }
    return rows


@contextlib.contextmanager
def object_store(kind: str):
    """The same loopback server the tests use: kind "gcs" (the emulator, GCS preconditions enforced) or "s3"
    (moto)."""
    tests_dir = str(Path(__file__).resolve().parents[1] / "tests")
    sys.path.insert(0, tests_dir)
    try:
        import storage_servers

        with storage_servers.serve_object_store(kind) as server:
            yield server
    finally:
        sys.path.remove(tests_dir)


# The references: a plain parallel upload of the same files with each client's own transfer manager, the
# same parallelism and the same client-side checksums as the push, and nothing else (no staging, no promote).
_UPLOAD_SCRIPTS = {
    "gcs": """
import sys
from pathlib import Path
from google.cloud.storage import Client, transfer_manager
root, bucket, prefix, workers = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
names = [p.relative_to(root).as_posix() for p in root.rglob('*') if p.is_file()]
results = transfer_manager.upload_many_from_filenames(
    Client().bucket(bucket), names, source_directory=str(root), blob_name_prefix=prefix + '/',
    worker_type=transfer_manager.THREAD, max_workers=workers, upload_kwargs={'checksum': 'crc32c'})
sys.exit(1 if [r for r in results if isinstance(r, Exception)] else 0)
""",
    "s3": """
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import boto3
from boto3.s3.transfer import TransferConfig
root, bucket, prefix, workers = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
client = boto3.client('s3')
config = TransferConfig(multipart_threshold=64 * 1024 * 1024, max_concurrency=workers)
def up(p):
    key = prefix + '/' + p.relative_to(root).as_posix()
    client.upload_file(str(p), bucket, key, ExtraArgs={'ChecksumAlgorithm': 'CRC32'}, Config=config)
with ThreadPoolExecutor(workers) as pool:
    list(pool.map(up, [p for p in root.rglob('*') if p.is_file()]))
""",
}
_REFERENCES = {
    "gcs": f"transfer_manager.upload_many_from_filenames, {UPLOAD_WORKERS} threads, crc32c",
    "s3": f"boto3 upload_file (TransferConfig: 64 MB parts, {UPLOAD_WORKERS} threads), {UPLOAD_WORKERS} files "
    "at once, CRC32",
}


def object_store_publish(kind: str, model: Path, pairs: int) -> dict:
    phases: dict[str, Series] = {"upload": Series(), "promote": Series(), "without_pb": Series()}
    counter = iter(range(10**6))
    scheme = {"gcs": "gs", "s3": "s3"}[kind]
    with object_store(kind) as server:
        bucket = server.new_bucket()

        def ours() -> float:
            settle_cache([model])
            run = push(model, f"{scheme}://{bucket}/pushed{next(counter)}/model", env=server.env)
            found = _TIMINGS.search(run.stdout + run.stderr)
            if found:
                for key, value in zip(("upload", "promote", "without_pb"), found.groups(), strict=True):
                    phases[key].values.append(float(value))
            return run.seconds

        def reference() -> float:
            settle_cache([model])
            argv = [sys.executable, "-c", _UPLOAD_SCRIPTS[kind], str(model), bucket, f"plain{next(counter)}"]
            return check(run_process([*argv, str(UPLOAD_WORKERS)], env=server.env), "plain upload").seconds

        paired = Paired().run(ours, reference, pairs)
    return {
        **paired.summary(">= 1.0"),
        "reference": _REFERENCES[kind],
        "phases_seconds": {k: v.summary() for k, v in phases.items() if v.values},
    }
