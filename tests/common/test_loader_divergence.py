"""The divergence corpus: SavedModels on which Python's TF1 loader and TensorFlow's C++ loader disagree.

TF Serving loads a version with `tensorflow::LoadSavedModel` (loader.cc); Python's
`tf.compat.v1.saved_model.loader.load` (loader_impl.py) is a separate implementation. Each case below is a
SavedModel built the way it happens in practice, with what loader.cc does with it written down from its
source (EXPECTED_CPP), and a test that the oracle (the C++ loader through the C API) reaches exactly that
verdict while Python's loader reaches another, saying why. The check step names each case with its own code.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from check_builders import codes, static_findings

from kfp_tfserving.components.check_signatures.findings import ERROR, WARNING
from kfp_tfserving.components.common.saved_model.proto import read_saved_model_proto
from kfp_tfserving.components.common.serving_oracle import ServedModel, ServingLoadError, ServingRunError

WORDS = ["spam", "ham", "eggs"]
REQUEST = np.array([b"ham", b"unknown word"], dtype=object)


def build_two_exports(root: Path) -> tuple[Path, Path]:
    """The issue's example: one graph (a vocabulary table over words.txt in ASSET_FILEPATHS, a classifier)
    saved by two Builders from one session, an export per signature. The first Builder adds words.txt's
    AssetFileDef to the graph's `saved_model_assets` collection; the second adds it again."""
    import tensorflow as tf

    v1 = tf.compat.v1
    root.mkdir(parents=True, exist_ok=True)
    words = root / "words.txt"
    words.write_text("\n".join(WORDS) + "\n")
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as session:
        text = v1.placeholder(tf.string, [None], name="text")
        init = tf.lookup.TextFileInitializer(
            str(words),
            tf.string,
            tf.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64,
            tf.lookup.TextFileIndex.LINE_NUMBER,
        )
        table = tf.lookup.StaticVocabularyTable(init, num_oov_buckets=1)
        embedding = v1.get_variable(
            "embedding", initializer=np.linspace(-1, 1, 8, dtype=np.float32).reshape(4, 2)
        )
        logits = tf.nn.embedding_lookup(embedding, table.lookup(text))
        scores = tf.nn.softmax(logits, name="scores")
        sig = v1.saved_model.predict_signature_def({"text": text}, {"scores": scores})
        session.run(v1.global_variables_initializer())
        out = []
        for where, key in (("exp_a", "serving_default"), ("exp_b", "predict")):
            builder = v1.saved_model.Builder(str(root / where))
            builder.add_meta_graph_and_variables(
                session,
                ["serve"],
                signature_def_map={key: sig},
                assets_collection=v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS),
                # The graph's collection keeps the first main op: Builder refuses a second one.
                main_op=v1.tables_initializer() if not out else None,
            )
            builder.save()
            out.append(root / where)
    return out[0], out[1]


def _edited(path: Path, edit) -> Path:
    proto = read_saved_model_proto(path)
    edit(proto.meta_graphs[0])
    (path / "saved_model.pb").write_bytes(proto.SerializeToString())
    return path


def _single(root: Path) -> Path:
    first, _ = build_two_exports(root)  # the first export alone has each asset once
    return first


def _pin_to_gpu(meta) -> None:
    for node in meta.graph_def.node:
        node.device = "/device:GPU:0"  # exported on a GPU machine without clear_devices


def _main_op_as_tensor(meta) -> None:
    values = meta.collection_def["saved_model_main_op"].node_list.value
    values[0] = values[0] + ":0"


def _stale_legacy_init_op(meta) -> None:
    meta.collection_def["legacy_init_op"].node_list.value.append("init_from_an_older_graph")


def build(case: str, root: Path) -> Path:
    if case == "duplicate-asset":
        return build_two_exports(root)[1]
    path = _single(root)
    if case == "device-pinned":
        return _edited(path, _pin_to_gpu)
    if case == "asset-file-missing":
        # An AssetFileDef naming the file by its absolute path (hand-built or rewritten protos do this).
        absolute = str(root / "words.txt")

        def edit(meta):
            from tensorflow.core.protobuf import meta_graph_pb2

            packed = meta.collection_def["saved_model_assets"].any_list.value[0]
            asset = meta_graph_pb2.AssetFileDef()
            packed.Unpack(asset)
            asset.filename = absolute
            packed.Pack(asset)

        return _edited(path, edit)
    if case == "debug-info-unreadable":
        (path / "debug").mkdir()
        (path / "debug" / "saved_model_debug_info.pb").write_bytes(b"\xff\xff truncated by a copy")
        return path
    if case == "saver-def-missing":
        return _edited(path, lambda meta: meta.ClearField("saver_def"))
    if case == "missing-variables":
        (path / "variables" / "variables.index").unlink()
        return path
    if case == "init-op-named-as-tensor":
        return _edited(path, _main_op_as_tensor)
    if case == "init-op-ignored":
        return _edited(path, _stale_legacy_init_op)
    raise AssertionError(case)


# What loader.cc does with each case: (verdict, words of TensorFlow's own message).
#   "load fails"    LoadSavedModel returns an error: TF Serving never serves the version
#   "request fails" the version loads and every request fails
#   "answers"       the version loads and answers
EXPECTED_CPP = {
    # AddAssetsTensorsToInputs pushes one feed per AssetFileDef; Session::Run refuses a repeated feed.
    "duplicate-asset": ("load fails", "fed more than once"),
    # The session config has no allow_soft_placement (server.cc): the placer refuses an absent device.
    "device-pinned": ("load fails", "Cannot assign a device"),
    # io::JoinPath(export_dir, "assets", filename) puts even an absolute filename under assets/.
    "asset-file-missing": ("load fails", "No such file"),
    # ReadSavedModelDebugInfoIfPresent parses debug/saved_model_debug_info.pb and returns its error.
    "debug-info-unreadable": ("load fails", ""),
    # RunRestore runs saver_def.restore_op_name only: no saver_def, nothing restored.
    "saver-def-missing": ("request fails", "embedding"),
    # RunRestore skips the restore when variables.index is absent ("The specified SavedModel has no variables").
    "missing-variables": ("request fails", "embedding"),
    # The init op name goes to the session as a target; the session runs the op behind a tensor name.
    "init-op-named-as-tensor": ("answers", ""),
    # GetInitOp takes main_op when present and never looks at legacy_init_op.
    "init-op-ignored": ("answers", ""),
}

# Why Python's TF1 loader (loader_impl.py) reaches another verdict: (its verdict, why).
PYTHON_DIFFERS = {
    "duplicate-asset": ("answers", "get_asset_tensors builds a dict: the second entry overwrites the first"),
    "device-pinned": ("answers", "TF2's Python Session config allows soft placement onto the CPU"),
    "asset-file-missing": (
        "answers",
        "os.path.join(assets_dir, filename) returns an absolute filename as is",
    ),
    "debug-info-unreadable": ("answers", "the Python loader never reads debug/"),
    "saver-def-missing": (
        "answers",
        "import_meta_graph builds a Saver of the graph's variables and restores",
    ),
    "missing-variables": ("load fails", "Saver.restore refuses a prefix without variables.index"),
    "init-op-named-as-tensor": ("load fails", "the imported collection maps 'op:0' to a tensor the op lacks"),
    "init-op-ignored": ("load fails", "import_meta_graph imports legacy_init_op, which names a missing op"),
}

# The check step's finding per case: (code, severity).
FINDINGS = {
    "duplicate-asset": ("duplicate-asset", ERROR),
    "asset-file-missing": ("asset-file-missing", ERROR),
    "debug-info-unreadable": ("debug-info-unreadable", ERROR),
    "saver-def-missing": ("saver-def-missing", ERROR),
    "missing-variables": ("missing-variables", ERROR),
    "init-op-named-as-tensor": ("init-op-named-as-tensor", WARNING),
    "init-op-ignored": ("init-op-ignored", WARNING),
}


def oracle_verdict(path: Path) -> tuple[str, str]:
    try:
        with ServedModel(path) as served:
            try:
                out = served.predict({"text": REQUEST}, served_signature(served))
            except ServingRunError as err:
                return "request fails", err.what
            return "answers", str(out["scores"].tolist())
    except ServingLoadError as err:
        return "load fails", err.what


def served_signature(served) -> str:
    return "serving_default" if "serving_default" in served.signatures else "predict"


def python_verdict(path: Path, tf) -> tuple[str, str]:
    """Python's TF1 loader, in a Session as TensorFlow 2 makes one by default: the contrast, not a judge."""
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        try:
            meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        except Exception as err:
            return "load fails", str(err).splitlines()[0]
        sig = next(iter(meta.signature_def.values()))
        try:
            out = session.run(sig.outputs["scores"].name, {sig.inputs["text"].name: REQUEST})
        except Exception as err:
            return "request fails", str(err).splitlines()[0]
        return "answers", str(out.tolist())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, tf) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("divergence")
    return {case: build(case, root / case) for case in EXPECTED_CPP}


@pytest.mark.parametrize("case", sorted(EXPECTED_CPP))
def test_the_oracle_reaches_the_cpp_loaders_verdict_and_python_another(corpus, case, tf):
    verdict, words = EXPECTED_CPP[case]
    got, message = oracle_verdict(corpus[case])
    assert got == verdict, message
    assert words in message
    python, why = PYTHON_DIFFERS[case]
    assert python != verdict, why
    assert python_verdict(corpus[case], tf)[0] == python, why


@pytest.mark.parametrize("case", sorted(FINDINGS))
def test_check_names_each_case_with_its_own_code(corpus, case):
    code, severity = FINDINGS[case]
    found = [f for f in static_findings(corpus[case]) if f.code == code]
    assert found and {f.severity for f in found} == {severity}, codes(static_findings(corpus[case]))
    assert found[0].fix


def test_a_model_the_server_answers_draws_no_error_from_the_init_op_it_never_runs(corpus):
    found = static_findings(corpus["init-op-ignored"])
    assert not [f for f in found if f.severity == ERROR], [f.one_line() for f in found]


def test_a_device_pin_is_named_by_the_runtime_check(corpus, tmp_path):
    from kfp_tfserving.components.check_signatures.runtime_checks import load

    served, _, findings = load(corpus["device-pinned"], ("serve",))
    assert served is None
    found = [f for f in findings if f.code == "device-pinned"]
    assert found and found[0].severity == ERROR and "clear_devices" in found[0].fix


def test_the_duplicate_asset_finding_names_the_tensor_and_the_fix(corpus):
    (found,) = [f for f in static_findings(corpus["duplicate-asset"]) if f.code == "duplicate-asset"]
    proto = read_saved_model_proto(corpus["duplicate-asset"])
    assets = str(proto.meta_graphs[0].collection_def["saved_model_assets"])
    assert found.tensor.endswith(":0") and found.tensor in assets
    assert "kfp-tfserving run" in found.fix and "fed more than once" in found.message


def test_the_first_export_of_the_two_is_servable_as_it_is(tmp_path, tf):
    first, _ = build_two_exports(tmp_path)
    verdict, answer = oracle_verdict(first)
    assert verdict == "answers"
    assert python_verdict(first, tf) == (verdict, answer)
    assert not [f for f in static_findings(first) if f.severity == ERROR]


def test_the_repair_drops_only_the_duplicates(tmp_path, tf):
    from kfp_tfserving.components.common.saved_model.repair import drop_duplicate_assets

    _, second = build_two_exports(tmp_path / "src")
    copy = tmp_path / "copy"
    shutil.copytree(second, copy)
    before = read_saved_model_proto(copy)
    dropped = drop_duplicate_assets(copy)
    assert len(dropped) == 1 and dropped[0] in str(before.meta_graphs[0].collection_def["saved_model_assets"])
    after = read_saved_model_proto(copy)
    assets = after.meta_graphs[0].collection_def["saved_model_assets"].any_list.value
    assert len(assets) == 1
    before.meta_graphs[0].collection_def["saved_model_assets"].any_list.value.pop()
    assert after == before  # nothing else changed
    assert drop_duplicate_assets(copy) == []  # idempotent
    assert oracle_verdict(copy) == python_verdict(second, tf)


def test_the_issue_example_is_refused_by_check_and_repaired_on_the_way_in(tmp_path):
    from conftest import served_predict

    from kfp_tfserving.components.check_signatures.check_step import check_model
    from kfp_tfserving.components.export_savedmodel.exporter import export_model

    _, second = build_two_exports(tmp_path / "src")
    report = check_model(second)
    assert not report.passed
    assert "duplicate-asset" in {f.code for f in report.findings if f.severity == ERROR}
    metadata: dict = {}
    export_model(second, {}, tmp_path / "out", metadata, signature="predict")
    assert "dropped the duplicated AssetFileDef" in metadata["repaired"] and metadata["parity_passed"]
    assert check_model(tmp_path / "out").passed
    scores = served_predict(tmp_path / "out", text=REQUEST)["scores"]
    assert scores.shape == (2, 2) and np.allclose(scores.sum(axis=1), 1)


@pytest.mark.slow
def test_kfp_tfserving_run_repairs_and_publishes_the_issue_example(tmp_path):
    from conftest import run_cli_json, served_predict

    _, second = build_two_exports(tmp_path / "src")
    base = tmp_path / "serving" / "spam"
    result = run_cli_json("run", str(second), "--signature", "predict", "--base-path", str(base))
    assert result["version"] == 1 and "duplicated AssetFileDef" in result["repaired"]
    answer = served_predict(base / "1", text=REQUEST)["scores"]
    assert answer.shape == (2, 2)
