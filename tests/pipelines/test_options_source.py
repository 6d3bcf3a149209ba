"""One options source per step: the component signatures and docstrings, the pipelines, the command line
and the README tables all agree with components/<step>/options.py."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import click
import docstring_parser
import pytest
from click.testing import CliRunner

from kfp_tfserving.components.common.options import REQUIRED, Option, Options
from kfp_tfserving.pipelines import parameters

REPO = Path(__file__).resolve().parents[2]
STEPS = {
    "load_model": "LOAD_OPTIONS",
    "export_savedmodel": "EXPORT_OPTIONS",
    "check_signatures": "CHECK_OPTIONS",
    "push_to_serving": "PUSH_OPTIONS",
    "train_keras_example": "TRAIN_OPTIONS",
    "deploy_kserve": "DEPLOY_OPTIONS",
}
PIPELINES = {
    "export_to_serving": parameters.EXPORT_TO_SERVING,
    "serve_model": parameters.SERVE_MODEL,
    "retrain_and_export": parameters.RETRAIN_AND_EXPORT,
}


def _options(step: str) -> Options:
    return getattr(importlib.import_module(f"kfp_tfserving.components.{step}.options"), STEPS[step])


def _words(text: str) -> str:
    return " ".join(text.split())


def _parameters(func) -> dict[str, inspect.Parameter]:
    """The function's parameters that are not artifacts (Input[...], Output[...])."""
    return {
        name: p
        for name, p in inspect.signature(func).parameters.items()
        if p.annotation in (str, int, float, bool, list[str])
    }


def _expected_default(option: Option):
    return inspect.Parameter.empty if option.required else option.default


@pytest.mark.parametrize("step", sorted(STEPS))
def test_component_signature_and_docstring_are_the_options(step):
    """KFP reads a component's parameters from its source, so the signature stays literal; it must say what
    the options say: same names in the same order, types, defaults and help."""
    module = importlib.import_module(f"kfp_tfserving.components.{step}.component")
    func = getattr(module, step).python_func
    options = _options(step)
    params = _parameters(func)
    assert list(params) == list(options), step
    docs = {p.arg_name: _words(p.description) for p in docstring_parser.parse(func.__doc__).params}
    for name, option in options.items():
        assert params[name].annotation == option.annotation, name
        assert params[name].default == _expected_default(option), name
        assert docs[name] == _words(option.help), f"{step}.{name}: docstring and options.py differ"


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_pipeline_parameters_are_the_steps_options(name):
    from kfp_tfserving.pipelines.cli.compile import pipeline_yaml

    pipeline = getattr(importlib.import_module(f"kfp_tfserving.pipelines.{name}"), name)
    params = _parameters(pipeline.pipeline_func)
    options = PIPELINES[name]
    assert set(params) == set(options)
    for option in options.values():
        assert params[option.name].default == _expected_default(option), option.name
        assert params[option.name].annotation == option.annotation, option.name
    # and so are the committed YAML's (the golden test proves the YAML is a fresh compile)
    import yaml

    declared = yaml.safe_load(pipeline_yaml(name).read_text())["root"]["inputDefinitions"]["parameters"]
    assert set(declared) == set(options)
    for option in options.values():
        assert declared[option.name].get("defaultValue", REQUIRED) == option.default, option.name


def test_every_step_option_reaches_the_pipelines_steps():
    """export_to_serving hands each step every option it declares (none silently left at its default)."""
    import yaml

    from kfp_tfserving.pipelines.cli.compile import pipeline_yaml

    tasks = yaml.safe_load(pipeline_yaml("export_to_serving").read_text())["root"]["dag"]["tasks"]
    given = {task: set(spec["inputs"].get("parameters", {})) for task, spec in tasks.items()}
    assert given["export-savedmodel"] == set(_options("export_savedmodel"))
    assert given["check-signatures"] == set(_options("check_signatures"))
    assert given["push-to-serving"] == set(_options("push_to_serving"))
    assert given["load-model"] == set(_options("load_model")) - {"max_extract_bytes"}


def _click_params(command: click.Command) -> dict[str, click.Parameter]:
    return {p.name: p for p in command.params}


@pytest.mark.parametrize(
    "command, options",
    [
        ("run", parameters.EXPORT_TO_SERVING.without("source_uri")),
        ("push", _options("push_to_serving")),
        (
            "check",
            _options("check_signatures").only("contract_uri", "serving_tf_version", "tags", "sample_uri"),
        ),
    ],
)
def test_command_line_options_are_the_steps_options(command, options):
    from kfp_tfserving.pipelines.cli import main

    params = _click_params(main.commands[command])
    for name, option in options.items():
        assert name in params, f"{command} lacks {option.cli_flag}"
        param = params[name]
        assert param.help == option.help
        assert option.cli_flag in param.opts
        if option.required:
            assert param.required
        elif option.type is list:
            assert param.default in ("", ())
        else:
            assert param.default == option.default, name


def test_run_accepts_every_push_option_and_hands_it_to_the_pipeline(tmp_path, monkeypatch):
    """`run` once silently lacked --keep, --models-config, --label and --serving-url."""
    from kfp_tfserving.pipelines import cli
    from kfp_tfserving.pipelines.cli import local_run

    seen = {}

    def fake_run(path, arguments, **kwargs):
        seen.update(arguments)
        return {"pushed_version": "3", "pushed_destination": str(tmp_path / "b" / "3"), "pushed": 1}

    monkeypatch.setattr(local_run, "run_pipeline_yaml", fake_run)
    source = tmp_path / "m.keras"
    source.write_bytes(b"x")
    result = CliRunner().invoke(
        cli.main,
        [
            "run", str(source), "--base-path", str(tmp_path / "b"), "--keep", "2",
            "--models-config", "models.config", "--label", "canary", "--serving-url", "http://ts:8501",
            "--serving-timeout", "12", "--inputs", "a, b", "--feed", "k=1", "--feed", "j=2",
            "--no-batching-params", "--serving-tf-version", "2.19", "--tags", "gpu,serve", "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert set(seen) == set(parameters.EXPORT_TO_SERVING)
    assert seen["keep"] == 2 and seen["label"] == "canary" and seen["serving_url"] == "http://ts:8501"
    assert seen["models_config"] == str(Path("models.config").resolve())
    assert seen["serving_timeout"] == 12.0 and seen["serving_tf_version"] == "2.19"
    assert seen["inputs"] == ["a", "b"] and seen["feeds"] == ["k=1", "j=2"] and seen["outputs"] == []
    assert seen["batching_params"] is False and seen["tags"] == "gpu,serve"
    assert (
        seen["source_uri"] == str(source) and seen["parity_atol"] == parameters.CHAIN["parity_atol"].default
    )


def test_logic_defaults_are_the_options():
    from kfp_tfserving.components.check_signatures.check_step import check_step
    from kfp_tfserving.components.common.saved_model.tags import parse_tags
    from kfp_tfserving.components.export_savedmodel.exporter import export_model
    from kfp_tfserving.components.push_to_serving.publisher import PushOptions

    for func, options in (
        (export_model, _options("export_savedmodel")),
        (check_step, _options("check_signatures")),
    ):
        params = inspect.signature(func).parameters
        for name in ("parity_atol", "parity_rtol", "tags", "batching_params"):
            if name in options and name in params:
                assert params[name].default == options[name].default
    push = PushOptions()
    for name, option in _options("push_to_serving").without("base_path", "tags").items():
        assert getattr(push, name) == option.default, name
    assert push.tags == parse_tags(_options("push_to_serving")["tags"].default)
    assert PushOptions(tags="serve,gpu").tags == ("gpu", "serve")  # as the component and the CLI give it


def test_parity_atol_default_is_written_once_outside_the_component_signature():
    """The literal in component.py is KFP's (proved equal above); no other module repeats it."""
    pattern = re.compile(r"parity_atol\b[^\n=]*=\s*[\d.]+e-?\d+")
    hits = [
        path.relative_to(REPO).as_posix()
        for folder in ("components", "pipelines")
        for path in (REPO / folder).rglob("*.py")
        if pattern.search(path.read_text())
    ]
    assert hits == ["components/export_savedmodel/component.py"]


def _readme_table(step: str) -> dict[str, tuple[str, str]]:
    """The README's parameter table: name -> (type, default); a row naming several (`a`, `b`) splits."""
    rows = {}
    for line in (REPO / "components" / step / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`(\w+)`", cells[0])
        types = [t.strip(" `") for t in re.split(r",\s*(?![^\[]*\])", cells[1])]
        defaults = (
            [d.strip(" `") for d in cells[2].split(", ")] if "," in cells[2] else [cells[2].strip(" `")]
        )
        for i, name in enumerate(names):
            rows[name] = (types[min(i, len(types) - 1)], defaults[min(i, len(defaults) - 1)])
    return rows


def _readme_default(text: str):
    if text in ("", "—"):
        return REQUIRED
    if text == '""':
        return ""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


@pytest.mark.parametrize("step", sorted(STEPS))
def test_readme_parameter_table_is_the_options(step):
    rows = _readme_table(step)
    for name, option in _options(step).items():
        assert name in rows, f"components/{step}/README.md: no row for `{name}`"
        type_text, default_text = rows[name]
        assert type_text == (option.annotation.__name__ if option.type is not list else "list[str]") or (
            type_text == "list[str]" and option.type is list
        ), (step, name, type_text)
        assert _readme_default(default_text) == option.default, (step, name, default_text)
