"""SavedModels with several meta graphs: the tag-set TF Serving loads is exported, checked and served."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import published_versions, run_cli, run_cli_json

from kfp_tfserving.components.check_signatures.check_step import check_model
from kfp_tfserving.components.common.errors import FormatError
from kfp_tfserving.components.common.saved_model.proto import read_saved_model_proto
from kfp_tfserving.components.common.serving_oracle import load_served
from kfp_tfserving.components.export_savedmodel.exporter import export_model

X = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)


def build_multi_graph(tf, path: Path, tag_sets: list[list[str]]) -> Path:
    """A TF1 Builder SavedModel: y = x @ w * k, where k is 2 in the first tag-set's graph, 3, 4, ... after."""
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default(), v1.Session() as session:
        x = v1.placeholder(tf.float32, [None, 2], name="x")
        w = v1.get_variable("w", initializer=np.array([[1.0], [1.0]], dtype=np.float32))
        session.run(v1.global_variables_initializer())
        builder = v1.saved_model.Builder(str(path))
        for i, tags in enumerate(tag_sets):
            y = tf.multiply(tf.matmul(x, w), float(i + 2), name=f"y{i}")
            sig = v1.saved_model.signature_def_utils.predict_signature_def({"x": x}, {"y": y})
            if i == 0:
                builder.add_meta_graph_and_variables(
                    session, tags, signature_def_map={"serving_default": sig}
                )
            else:
                builder.add_meta_graph(tags, signature_def_map={"serving_default": sig})
        builder.save()
    return path


def tag_sets(model_dir: Path) -> list[list[str]]:
    return sorted(sorted(m.meta_info_def.tags) for m in read_saved_model_proto(model_dir).meta_graphs)


def _export(source: Path, tmp_path: Path, **kwargs) -> tuple[Path, dict]:
    export_dir, metadata = tmp_path / "export", {}
    export_model(source, {}, export_dir, metadata, **kwargs)
    return export_dir, metadata


def test_train_and_serve_graphs_export_the_serve_graph_and_keep_the_train_graph(tmp_path, tf):
    source = build_multi_graph(tf, tmp_path / "src", [["train"], ["serve"]])
    export_dir, metadata = _export(source, tmp_path)
    assert tag_sets(export_dir) == [["serve"], ["train"]]
    assert metadata["saved_model_tags"] == ["serve"] and metadata["parity_passed"]
    with load_served(export_dir) as served:  # {serve} is the second graph: k = 3
        np.testing.assert_allclose(served.predict({"x": X})["y"], [[9.0], [21.0]])


def test_tags_option_serves_the_gpu_graph_and_keeps_the_plain_serve_graph(tmp_path, tf):
    source = build_multi_graph(tf, tmp_path / "src", [["serve"], ["serve", "gpu"]])
    export_dir, metadata = _export(source, tmp_path, tags="serve,gpu")
    assert tag_sets(export_dir) == [["gpu", "serve"], ["serve"]]
    assert metadata["saved_model_tags"] == ["gpu", "serve"]
    with load_served(export_dir, tags=("serve", "gpu")) as served:
        np.testing.assert_allclose(served.predict({"x": X})["y"], [[9.0], [21.0]])
    with load_served(export_dir) as served:  # untouched: the {serve} graph still computes k = 2
        np.testing.assert_allclose(served.predict({"x": X})["y"], [[6.0], [14.0]])


def test_tags_naming_no_meta_graph_fail_with_the_tag_sets_found_and_the_option(tmp_path, tf):
    source = build_multi_graph(tf, tmp_path / "src", [["train"], ["serve", "tpu"]])
    with pytest.raises(FormatError) as err:
        _export(source, tmp_path)
    message = err.value.one_line()
    assert "no meta graph with the tag-set {serve}" in message
    assert "{serve,tpu}" in message and "{train}" in message and "--tags" in message
    assert not message.startswith("unexpected")


def test_keras_export_is_tagged_with_the_tag_set_asked_for(tmp_path, keras_two_io):
    export_dir, metadata = _export(keras_two_io, tmp_path, tags="gpu,serve")
    assert tag_sets(export_dir) == [["gpu", "serve"]]
    assert metadata["parity_passed"]


def test_check_judges_the_tag_set_tf_serving_loads(tmp_path, tf):
    source = build_multi_graph(tf, tmp_path / "src", [["train"], ["serve", "gpu"]])
    default = check_model(source)
    assert not default.passed
    (finding,) = [f for f in default.findings if f.code == "no-serve-tag"]
    assert "{gpu,serve}" in finding.message and "--saved_model_tags" in finding.fix
    gpu = check_model(source, tags=("gpu", "serve"))
    assert gpu.passed, [f.one_line() for f in gpu.findings]
    assert gpu.runtime.output_shapes == {"y": [2, 1]}


def test_check_cli_takes_saved_model_tags(tmp_path, tf):
    source = build_multi_graph(tf, tmp_path / "src", [["serve", "gpu"]])
    assert run_cli("check", str(source)).returncode == 1
    for flag in ("--tags", "--saved-model-tags"):  # the step's name, and the spelling of earlier releases
        proc = run_cli("check", str(source), flag, "serve,gpu")
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_run_publishes_the_gpu_graph_with_every_meta_graph_kept(tmp_path, tf):
    source = build_multi_graph(tf, tmp_path / "src", [["train"], ["serve", "gpu"], ["serve"]])
    base = tmp_path / "serving" / "multi"
    result = run_cli_json("run", str(source), "--base-path", str(base), "--tags", "serve,gpu")
    assert result["version"] == 1 and published_versions(base) == [1]
    version = base / "1"
    assert tag_sets(version) == [["gpu", "serve"], ["serve"], ["train"]]
    with load_served(version, tags=("gpu", "serve")) as served:  # the warmup file replays too
        np.testing.assert_allclose(served.predict({"x": X})["y"], [[9.0], [21.0]])


def test_push_publishes_the_tag_set_the_export_served_when_its_tags_name_it(tmp_path, keras_two_io):
    from kfp_tfserving.components.common.errors import PublishError, UserError
    from kfp_tfserving.components.push_to_serving.publisher import PushOptions, push_step

    export_dir, metadata = _export(keras_two_io, tmp_path, tags="gpu,serve")
    with pytest.raises(PublishError, match=r"no meta graph with the tag-set \{serve\}"):
        push_step(export_dir, {}, {}, str(tmp_path / "refused"), PushOptions(), tmp_path / "r1.md")
    assert not (tmp_path / "refused").exists()
    # The export's record of its tag-set is a cross-check of the step's `tags`, never a second channel.
    with pytest.raises(UserError, match=r"served its graph under the tag-set \{gpu,serve\}.*tags=gpu,serve"):
        push_step(export_dir, metadata, {}, str(tmp_path / "m"), PushOptions(), tmp_path / "r2.md")
    assert not (tmp_path / "m").exists() or not published_versions(tmp_path / "m")
    pushed: dict = {}
    push_step(
        export_dir, metadata, pushed, str(tmp_path / "m"), PushOptions(tags="serve,gpu"), tmp_path / "r2.md"
    )
    assert pushed["pushed"] == 1 and published_versions(tmp_path / "m") == [1]
