"""Exit codes: 1 the model was rejected, 2 bad usage or input, 3 a bug (with its traceback file), 75 try
again; the same from a step, from a local pipeline run and from the command line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from kfp_tfserving.components.common import errors
from kfp_tfserving.components.common.errors import (
    ERROR_MARKER,
    EXIT_BUG,
    EXIT_PERMANENT,
    EXIT_REJECTED,
    EXIT_TRANSIENT,
    ModelRejected,
    TransientStorageError,
    UserError,
    find_error_line,
    find_exit_code,
    reports_errors,
)


def test_the_codes_are_the_documented_ones():
    assert (EXIT_REJECTED, EXIT_PERMANENT, EXIT_BUG, EXIT_TRANSIENT) == (1, 2, 3, 75)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## The command line", 1)[1].split("\n## ", 1)[0]
    for code in (1, 2, 3, 75):
        assert re.search(rf"`{code}`", section), f"README's command-line section does not document {code}"


def _raising(exc: BaseException):
    @reports_errors
    def step():
        raise exc

    return step


@pytest.mark.parametrize(
    "exc, code",
    [
        (ModelRejected("TF Serving would reject the model: x"), EXIT_REJECTED),
        (UserError("/m: no such file", "give a path"), EXIT_PERMANENT),
        (TransientStorageError("gs://b: 503"), EXIT_TRANSIENT),
        (KeyError("oops"), EXIT_BUG),
    ],
)
def test_a_step_exits_with_its_code_and_logs_it(exc, code, capsys):
    with pytest.raises(SystemExit) as exited:
        _raising(exc)()
    assert exited.value.code == code
    log = capsys.readouterr().err
    assert find_exit_code(log) == code
    assert find_error_line(log) and log.count(ERROR_MARKER) == 1


def test_a_bug_names_the_file_that_holds_its_traceback(capsys):
    with pytest.raises(SystemExit):
        _raising(ZeroDivisionError("deep inside"))()
    line = find_error_line(capsys.readouterr().err)
    assert line.startswith("a bug in kfp-tfserving: ZeroDivisionError: deep inside")
    traceback_file = Path(re.search(r"traceback in (\S+)", line).group(1))
    assert "ZeroDivisionError" in traceback_file.read_text() and "Traceback" in traceback_file.read_text()
    traceback_file.unlink()


def test_tensorflow_refusing_to_run_the_model_is_a_rejection(capsys):
    class OpError(Exception):  # stands for tf.errors.OpError, matched by module and name
        __module__ = "tensorflow.python.framework.errors_impl"

    with pytest.raises(SystemExit) as exited:
        _raising(OpError("Incompatible shapes"))()
    assert exited.value.code == EXIT_REJECTED
    assert "TensorFlow cannot run the model" in capsys.readouterr().err


def test_the_last_failing_step_decides_the_code():
    log = f"kfp-tfserving exit code: 75\n{ERROR_MARKER}first\nnoise\nkfp-tfserving exit code: 1\n"
    log += f"{ERROR_MARKER}second\n"
    assert (find_error_line(log), find_exit_code(log)) == ("second", 1)
    assert find_exit_code("no marker here") is None


@pytest.mark.parametrize("code", [EXIT_REJECTED, EXIT_PERMANENT, EXIT_BUG, EXIT_TRANSIENT])
def test_run_exits_with_the_failing_steps_code(tmp_path, monkeypatch, code):
    """A local run sees only the steps' log; the code the step reported there is `run`'s."""
    from kfp_tfserving.pipelines import cli
    from kfp_tfserving.pipelines.cli import local_run

    def failing_run(path, arguments, **kwargs):
        raise UserError("the step's reason", "full log: run.log", exit_code=code)

    monkeypatch.setattr(local_run, "run_pipeline_yaml", failing_run)
    source = tmp_path / "m.keras"
    source.write_bytes(b"x")
    result = CliRunner().invoke(cli.main, ["run", str(source), "--base-path", str(tmp_path / "b")])
    assert result.exit_code == code
    assert "error: the step's reason; full log: run.log" in result.output


def test_a_bug_in_a_command_exits_3_with_its_traceback_file(tmp_path, monkeypatch):
    from kfp_tfserving.components.push_to_serving import publisher
    from kfp_tfserving.pipelines import cli

    def broken(*args, **kwargs):
        raise AttributeError("'NoneType' object has no attribute 'version'")

    monkeypatch.setattr(publisher, "publish", broken)
    result = CliRunner().invoke(cli.main, ["push", str(tmp_path), "--base-path", str(tmp_path / "b")])
    assert result.exit_code == EXIT_BUG
    assert "a bug in kfp-tfserving: AttributeError" in result.output
    assert Path(re.search(r"traceback in (\S+)", result.output).group(1)).is_file()


def test_bad_usage_and_bad_input_exit_2(tmp_path):
    from kfp_tfserving.pipelines import cli

    runner = CliRunner()
    assert runner.invoke(cli.main, ["run", str(tmp_path)]).exit_code == EXIT_PERMANENT  # no --base-path
    missing = runner.invoke(cli.main, ["push", str(tmp_path / "nothing"), "--base-path", str(tmp_path)])
    assert missing.exit_code == EXIT_PERMANENT and "not a directory" in missing.output


def test_exit_code_for_follows_the_error_class():
    assert errors.exit_code_for(errors.PublishError("x")) == EXIT_PERMANENT
    assert errors.exit_code_for(errors.FormatError("x")) == EXIT_PERMANENT
    assert errors.exit_code_for(UserError("x", exit_code=EXIT_BUG)) == EXIT_BUG
