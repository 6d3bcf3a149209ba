"""The batching sweep: the curve → parameters derivation, the pbtxt TF Serving reads, the report section."""

from __future__ import annotations

import itertools

import pytest
from google.protobuf import text_format

from kfp_tfserving.components.check_signatures import batching
from kfp_tfserving.components.check_signatures.batching import SweepPoint, derive, sweep
from kfp_tfserving.components.check_signatures.batching_params import (
    BATCHING_PARAMS_FILE,
    BatchingConfig,
    BatchingParameters,
    read_batching_params,
    write_batching_params,
)
from kfp_tfserving.components.check_signatures.batching_report import batching_markdown
from kfp_tfserving.components.common.formats.base import TensorSpecInfo


def _curve(latencies_ms: dict[int, float]) -> list[SweepPoint]:
    return [SweepPoint(batch, ms, 5) for batch, ms in latencies_ms.items()]


def test_max_batch_size_stops_where_doubling_buys_less_than_ten_percent():
    # throughput (examples per 10 ms): 1, 1.9, 3.2, 4.0, 4.3 (+7.5 %), 4.4
    points = _curve({1: 10.0, 2: 20 / 1.9, 4: 40 / 3.2, 8: 20.0, 16: 160 / 4.3, 32: 320 / 4.4})
    config = derive(points, serving_cpus=4, variable_length=False)
    assert config.max_batch_size == 8
    assert config.allowed_batch_sizes == [1, 2, 4, 8]
    assert config.batch_timeout_micros == 20000  # one batch of 8 takes 20 ms
    assert config.num_batch_threads == 4
    assert config.max_enqueued_batches == 50 * 4  # one second of 20 ms batches on each thread
    assert config.pad_variable_length_inputs is False


def test_a_flat_curve_keeps_batch_one_and_the_queue_is_capped():
    config = derive(_curve({1: 0.01, 2: 0.02, 4: 0.04}), serving_cpus=0, variable_length=True)
    assert (config.max_batch_size, config.allowed_batch_sizes) == (1, [1])
    assert config.num_batch_threads == 1 and config.max_enqueued_batches == 1000
    assert config.pad_variable_length_inputs is True


class _FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_sweep_doubles_up_to_the_largest_batch_and_times_each_size():
    clock = _FakeClock()
    seen = []

    def run(batch):
        seen.append(batch)
        clock.now += 0.001 + 0.0001 * batch

    points = sweep(run, budget_seconds=100, max_batch=16, clock=clock)
    assert [p.batch for p in points] == [1, 2, 4, 8, 16]
    assert points[0].latency_ms == pytest.approx(1.1) and points[-1].latency_ms == pytest.approx(2.6)
    assert all(p.calls == 2 for p in points)  # equal calls: the second one settles each size
    assert sorted(set(seen)) == [1, 2, 4, 8, 16]


def _calls_taking(clock: _FakeClock, seconds: list[float]):
    durations = iter(seconds)

    def run(batch):
        clock.now += next(durations)

    return run


def test_a_slow_first_call_at_a_new_size_is_not_the_latency():
    clock = _FakeClock()
    point = batching.time_batch(_calls_taking(clock, [0.050, 0.020, 0.0205, 1.0]), 8, clock)
    assert point.calls == 3  # the allocation-paying first call disagreed; the next two agree within 5 %
    assert point.latency_ms == pytest.approx(20.25)


def test_calls_that_keep_disagreeing_stop_at_the_cap_with_the_median_after_the_first():
    clock = _FakeClock()
    noisy = [0.5, 0.010, 0.020, 0.010, 0.020, 0.010, 0.020, 0.010, 0.020, 0.010]
    point = batching.time_batch(_calls_taking(clock, noisy), 4, clock)
    assert point.calls == batching._MAX_CALLS
    assert point.latency_ms == pytest.approx(10.0)  # median of 10, 20, 10, 20, 10, 20, 10 ms


def test_a_size_stops_timing_at_the_deadline():
    clock = _FakeClock()
    point = batching.time_batch(_calls_taking(clock, [0.1, 0.3, 0.1, 0.3]), 4, clock, deadline=0.35)
    assert point.calls == 2 and point.latency_ms == pytest.approx(300.0)


def test_sweep_stops_one_size_past_the_knee():
    clock = _FakeClock()
    seen = []

    def run(batch):  # 1 ms per call up to batch 4, then 1 ms per example: no gain past 4
        seen.append(batch)
        clock.now += 0.001 * max(1, batch / 4)

    points = sweep(run, budget_seconds=100, max_batch=256, clock=clock)
    assert [p.batch for p in points] == [1, 2, 4, 8]
    assert max(seen) == 8  # batch 16 and up never ran
    assert derive(points, serving_cpus=1, variable_length=False).max_batch_size == 4


def test_sweep_stops_when_the_next_size_would_overrun_the_budget():
    clock = _FakeClock()

    def run(batch):
        clock.now += 0.01 * batch  # 10 ms per example: the budget runs out early

    points = sweep(run, budget_seconds=1.0, max_batch=256, clock=clock)
    assert 1 <= len(points) < 9
    assert clock.now < 1.0 + 4 * 0.01 * points[-1].batch  # it did not start a size it could not finish


def _spec(name, shape, dtype="float32"):
    return TensorSpecInfo(name, dtype, shape)


def test_variable_length_and_batchability_come_from_the_input_shapes():
    assert not batching.has_variable_length([_spec("x", (None, 4))])
    assert batching.has_variable_length([_spec("x", (None, 4)), _spec("tokens", (None, None), "int32")])
    assert batching.has_variable_length([_spec("x", None)])
    assert batching.batchable([_spec("x", (None, 4)), _spec("y", None)]) == ""
    assert "no variable batch dimension" in batching.batchable([_spec("x", (1, 4))])
    assert "'s'" in batching.batchable([_spec("s", ())])


def test_batching_params_file_is_tf_servings_message_in_text_format(tmp_path):
    config = BatchingConfig(16, 2500, 2, 800, [1, 2, 4, 8, 16], True)
    path = write_batching_params(config, tmp_path)
    assert path.name == BATCHING_PARAMS_FILE == "batching_params.pbtxt"
    text = path.read_text()
    assert "max_batch_size {\n  value: 16\n}" in text and "pad_variable_length_inputs: true" in text
    parsed = read_batching_params(path)
    assert parsed.max_batch_size.value == 16 and list(parsed.allowed_batch_sizes) == [1, 2, 4, 8, 16]
    assert parsed.DESCRIPTOR.full_name == "tensorflow.serving.BatchingParameters"
    # Wire format as in session_bundle_config.proto: field 1 a message (Int64Value), field 6 int64s.
    wire = BatchingParameters(allowed_batch_sizes=[3])
    wire.max_batch_size.value = 5
    assert wire.SerializeToString() == bytes([0x0A, 0x02, 0x08, 0x05, 0x32, 0x01, 0x03])


def test_a_misspelt_field_is_refused_like_tf_serving_would(tmp_path):
    (tmp_path / BATCHING_PARAMS_FILE).write_text("max_batch_sizes { value: 4 }\n")
    with pytest.raises(text_format.ParseError):
        read_batching_params(tmp_path / BATCHING_PARAMS_FILE)


def test_report_section_has_the_table_the_chart_and_the_parameters():
    points = _curve({1: 1.0, 2: 1.1, 4: 1.3})
    config = derive(points, 2, False)
    section = "\n".join(
        batching_markdown(
            {
                "file": BATCHING_PARAMS_FILE,
                "points": [
                    {"batch": p.batch, "latency_ms": p.latency_ms, "throughput": p.throughput} for p in points
                ],
                "parameters": config.__dict__,
                "serving_cpus": 2,
                "throughput_batch_1": points[0].throughput,
                "throughput_chosen": points[-1].throughput,
            }
        )
    )
    assert "| 4 | 1.300 | 3,077 | **max_batch_size** |" in section
    assert "data:image/svg+xml;base64," in section and "max_batch_size: 4" in section
    assert "--enable_per_model_batching_parameters" in section
    skipped = "\n".join(
        batching_markdown({"skipped": "not batchable: input 'x' has no variable batch dimension"})
    )
    assert "No batching_params.pbtxt written: not batchable" in skipped


def test_the_sweep_runs_through_the_serving_oracle_and_writes_into_the_version(tmp_path):
    pytest.importorskip("kfp_tfserving.components.common.serving_oracle")
    import tensorflow as tf

    module = tf.Module()
    module.w = tf.Variable(tf.ones([4, 3]))
    module.serve = tf.function(
        lambda x: {"y": tf.matmul(x, module.w)}, input_signature=[tf.TensorSpec([None, 4], tf.float32, "x")]
    )
    tf.saved_model.save(module, str(tmp_path / "m"), signatures={"serving_default": module.serve})
    result = batching.measure_and_write(tmp_path / "m", budget_seconds=2.0, serving_cpus=3)
    assert result["parameters"]["num_batch_threads"] == 3
    assert [p["batch"] for p in result["points"]][:2] == [1, 2]
    parsed = read_batching_params(tmp_path / "m" / BATCHING_PARAMS_FILE)
    assert parsed.max_batch_size.value == result["parameters"]["max_batch_size"]
    assert list(itertools.islice(parsed.allowed_batch_sizes, 1)) == [1]
