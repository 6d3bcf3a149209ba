"""One distribution, one import package: nothing generic lands at the top of site-packages."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest
from conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("kfp_tfserving-*.whl")
    return zipfile.ZipFile(wheel)


@pytest.fixture(scope="module")
def wheel_names(wheel) -> list[str]:
    return wheel.namelist()


def test_wheel_installs_only_the_kfp_tfserving_package(wheel_names):
    tops = {name.split("/")[0] for name in wheel_names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"kfp_tfserving"}


def test_wheel_carries_every_step_with_its_compiled_yaml_and_the_pipeline(wheel_names):
    for step in ("load_model", "export_savedmodel", "check_signatures", "push_to_serving", "deploy_kserve"):
        assert f"kfp_tfserving/components/{step}/component.py" in wheel_names
        assert f"kfp_tfserving/components/{step}/component.yaml" in wheel_names
    assert "kfp_tfserving/pipelines/export_to_serving.yaml" in wheel_names
    assert "kfp_tfserving/pipelines/tfx_serving.json" in wheel_names  # the TFX pipeline's KFP spec
    for module in ("component", "executor", "parameters"):
        assert f"kfp_tfserving/components/tfx/{module}.py" in wheel_names
    assert not any("/tests/" in n or n.startswith("tests/") for n in wheel_names)


def test_the_command_line_installs_as_its_own_subpackage_beside_the_pipelines(wheel_names):
    pipelines = {n.split("/", 2)[2] for n in wheel_names if n.startswith("kfp_tfserving/pipelines/")}
    for module in ("__init__", "__main__", "check", "push", "kubeflow", "run_watch", "local_run", "compile"):
        assert f"cli/{module}.py" in pipelines
    top_level_modules = {n for n in pipelines if "/" not in n and n.endswith(".py")}
    assert top_level_modules == {
        "__init__.py",
        "chain.py",
        "export_to_serving.py",
        "serve_model.py",
        "retrain_and_export.py",
        "parameters.py",
        "tfx_serving.py",
    }


def test_wheel_declares_the_console_script(wheel, wheel_names):
    entry_points = wheel.read(next(n for n in wheel_names if n.endswith("entry_points.txt"))).decode()
    assert "kfp-tfserving = kfp_tfserving.pipelines.cli:main" in entry_points
    proc = subprocess.run(
        [sys.executable, "-m", "kfp_tfserving.pipelines.cli", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "kfp-tfserving" in proc.stdout


def test_components_is_not_importable_as_a_top_level_name():
    proc = subprocess.run(
        [sys.executable, "-c", "import components"], capture_output=True, text=True, cwd="/"
    )
    assert proc.returncode != 0


def test_a_regular_install_of_the_wheel_works_outside_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            wheel.filename,
        ],
        check=True,
        capture_output=True,
    )
    probe = (
        "import kfp_tfserving.components as c, kfp_tfserving.pipelines.cli.compile as p;"
        "print(c.__file__); print(p.pipeline_yaml().is_file())"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    module_file, yaml_present = proc.stdout.split()
    assert module_file.startswith(str(target)) and yaml_present == "True"
