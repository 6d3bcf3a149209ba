"""Run the compiled export_to_serving pipeline in containers (kfp.local DockerRunner) on a tiny Keras model.

Used by containers/run_in_docker.sh, which starts the engine (DOCKER_HOST) and builds the runtime image.
Exit code 0 only when a new numeric version with a SavedModel was published under the base path.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from kfp_tfserving.components.common.tfenv import import_tensorflow


def tiny_keras_model(path: Path) -> Path:
    import_tensorflow()
    import keras

    features = keras.Input((4,), name="features")
    score = keras.layers.Dense(1, name="score")(keras.layers.Dense(8, activation="relu")(features))
    keras.Model(features, score).save(path)
    return path


def published_versions(base: Path) -> list[int]:
    return sorted(int(p.name) for p in base.iterdir() if p.name.isdigit()) if base.is_dir() else []


def run(work: Path) -> dict:
    import docker.types
    from kfp import components, local

    from kfp_tfserving.pipelines.cli.compile import pipeline_yaml

    shutil.rmtree(work, ignore_errors=True)
    data, root = work / "data", work / "pipeline_root"
    data.mkdir(parents=True)
    root.mkdir()
    source = tiny_keras_model(data / "tiny.keras")
    base = data / "serving" / "tiny"
    # Host network only (the engine has no bridge); the data folder is mounted at the same path, so the
    # pipeline's paths mean the same inside and outside the containers.
    runner = local.DockerRunner(
        network_mode="host",
        mounts=[docker.types.Mount(target=str(data), source=str(data), type="bind")],
    )
    local.init(runner=runner, pipeline_root=str(root), raise_on_error=True)
    pipeline = components.load_component_from_file(str(pipeline_yaml("export_to_serving")))
    task = pipeline(source_uri=str(source), base_path=str(base))
    versions = published_versions(base)
    if versions != [1] or not (base / "1" / "saved_model.pb").is_file():
        raise SystemExit(f"expected version 1 with a saved_model.pb under {base}; found versions {versions}")
    metadata = dict(task.output.metadata)
    if str(metadata.get("pushed_version")) != "1":
        raise SystemExit(
            f"the pushed model's metadata names version {metadata.get('pushed_version')!r}, not 1"
        )
    return {
        "base_path": str(base),
        "versions": versions,
        "pushed_destination": metadata["pushed_destination"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True, help="Scratch folder (emptied first).")
    result = run(parser.parse_args().work.resolve())
    print(json.dumps(result, sort_keys=True))
    print(f"ok: published {result['pushed_destination']} from containers", flush=True)


if __name__ == "__main__":
    main()
