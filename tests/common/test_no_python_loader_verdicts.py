"""No servability verdict comes from Python's loaders: only the oracle (TensorFlow's C++ loader) judges.

Walks the package's source (and the test stand-in server, and the benchmarks) for the Python TF1 loader
(`loader_impl`, `saved_model.loader.load`), TF2's `saved_model.load` and TF1 graph import into a Session.
The few places that load a *source* model to export it, or time the old call path as a benchmark
reference, are listed with the reason; everything else must stay clean.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PYTHON_LOADER = re.compile(
    r"loader_impl|saved_model\.loader\.load|saved_model\.load\(|compat\.v1\.saved_model\.load\(|import_meta_graph"
)

# file -> why it may load a model with Python's loaders (none of them decides whether TF Serving serves it)
ALLOWED = {
    "components/common/formats/saved_model.py": "loads a source SavedModel for its reference answer and re-save",
    "components/common/formats/checkpoint.py": "imports a TF1 checkpoint's meta graph to export it",
    "benchmarks/bench_latency.py": "times the TF2 source and the previous callable path as references",
}

# Modules whose every use of a loaded model is a verdict: they must not even mention an allowed path.
VERDICT_MODULES = [
    "components/common/serving_oracle.py",
    "components/common/load_stage.py",
    "components/common/tf_c_api",
    "components/check_signatures",
    "components/export_savedmodel",
    "components/push_to_serving",
    "components/deploy_kserve",
    "components/common/saved_model/fingerprint.py",
    "tests/tf_serving_standin.py",
]


def _sources() -> list[Path]:
    roots = [
        REPO / "components",
        REPO / "pipelines",
        REPO / "benchmarks",
        REPO / "tests" / "tf_serving_standin.py",
    ]
    files: list[Path] = []
    for root in roots:
        files += [root] if root.is_file() else sorted(root.rglob("*.py"))
    return files


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """Lines of code, without comments and docstring-only lines (prose may name the loaders it avoids)."""
    out, in_doc = [], False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        quotes = stripped.count('"""')
        if in_doc or stripped.startswith('"""'):
            if quotes == 1:
                in_doc = not in_doc
            continue
        out.append((number, line.split("#", 1)[0]))
    return out


def test_no_code_path_outside_the_listed_source_loaders_uses_pythons_loaders():
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {code.strip()}"
        for path in _sources()
        if str(path.relative_to(REPO)) not in ALLOWED
        for number, code in _code_lines(path)
        if PYTHON_LOADER.search(code)
    ]
    assert not offenders, "Python's loaders in a verdict path:\n" + "\n".join(offenders)


def test_the_verdict_modules_are_none_of_the_allowed_ones():
    for module in VERDICT_MODULES:
        assert (REPO / module).exists(), module
        assert not [a for a in ALLOWED if a.startswith(module)], module


def test_the_scan_finds_what_it_looks_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""Docs may say tf.saved_model.load( freely."""\n'
        "from tensorflow.python.saved_model import loader_impl\n"
        "x = 1  # tf.saved_model.load( in a comment\n"
        "tf.compat.v1.saved_model.loader.load(sess, ['serve'], d)\n"
    )
    hits = [n for n, code in _code_lines(sample) if PYTHON_LOADER.search(code)]
    assert hits == [2, 4]


def test_each_allowed_file_still_loads_a_source_so_the_list_stays_honest():
    for name in ALLOWED:
        assert any(PYTHON_LOADER.search(code) for _, code in _code_lines(REPO / name)), name
