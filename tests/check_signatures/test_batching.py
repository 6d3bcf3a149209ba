"""The batching measurement: the decision rule on synthetic noisy curves, the interleaved sweep on a fake
clock, the pbtxt TF Serving reads, the report section, and the load test on a tiny model."""

from __future__ import annotations

import random

import pytest
from google.protobuf import text_format

from kfp_tfserving.components.check_signatures import batching
from kfp_tfserving.components.check_signatures.batching import sweep
from kfp_tfserving.components.check_signatures.batching_params import (
    BATCHING_PARAMS_FILE,
    BatchingConfig,
    BatchingParameters,
    read_batching_params,
    write_batching_params,
)
from kfp_tfserving.components.check_signatures.batching_report import batching_markdown, metrics_of
from kfp_tfserving.components.check_signatures.batching_rule import decide, robust
from kfp_tfserving.components.common.formats.base import TensorSpecInfo

SIZES = (1, 2, 4, 8, 16, 32, 64)


def knee_cost(batch: int, knee: int = 8, fixed: float = 1e-3, per_example: float = 1e-5) -> float:
    """CPU seconds of one call: a fixed overhead shared by the batch up to `knee`, then linear past it
    (every example costs its own compute once the cores are saturated)."""
    return fixed * max(1.0, batch / knee) + per_example * batch


def noisy(cost, noise: float, rounds: int = 5, seed: int = 0, sizes=SIZES) -> dict[int, list[float]]:
    """Per size, `rounds` samples of cost(size), each off by up to ±noise, and rounds shifted together by
    up to ±3 x noise (other work on the machine slows every size of a round)."""
    rng = random.Random(seed)
    shifts = [1 + rng.uniform(-3 * noise, 3 * noise) for _ in range(rounds)]
    return {b: [cost(b) * s * (1 + rng.uniform(-noise, noise)) for s in shifts] for b in sizes}


def test_a_flat_curve_gives_no_file():
    flat = noisy(lambda b: 1e-3 * b, noise=0.05)  # every example costs the same at any batch size
    decision = decide(flat, serving_cpus=2)
    assert decision.config is None and "does not pay" in decision.reason


def test_a_curve_that_rises_by_less_than_ten_percent_per_doubling_gives_no_file():
    slow_rise = {b: [1e-3 * b / 1.05 ** (b.bit_length() - 1)] * 5 for b in SIZES}  # +5 % per doubling
    assert decide(slow_rise, serving_cpus=2).config is None


def test_a_clear_knee_is_chosen_with_its_parameters():
    decision = decide(noisy(knee_cost, noise=0.02), serving_cpus=4, wall={8: [0.01] * 5})
    config = decision.config
    assert config is not None and config.max_batch_size == 8
    assert config.allowed_batch_sizes == [1, 2, 4, 8]
    assert config.batch_timeout_micros == 10_000  # one batch of 8 takes 10 ms of wall time
    assert config.num_batch_threads == 4
    assert config.max_enqueued_batches == 100 * 4  # one second of 10 ms batches on each thread
    assert config.pad_variable_length_inputs is False


@pytest.mark.parametrize("knee", [4, 16, 32])
@pytest.mark.parametrize("noise", [0.03, 0.08])
def test_the_knee_is_stable_under_noise_of_the_measured_size(knee, noise):
    # 8 % noise per sample and ±24 % round to round: what the sweep measured on a shared, busy machine.
    chosen = {
        (d.config.max_batch_size if d.config else 1)
        for seed in range(40)
        for d in [decide(noisy(lambda b: knee_cost(b, knee), noise, seed=seed), serving_cpus=2)]
    }
    assert chosen == {knee}


def test_one_noisy_size_below_the_knee_does_not_end_the_search():
    samples = noisy(knee_cost, noise=0.02)
    samples[2] = [s * 1.6 for s in samples[2]]  # batch 2 slower than batch 1 in every round
    assert decide(samples, serving_cpus=2).config.max_batch_size == 8


def test_a_gain_within_the_measured_spread_is_no_gain():
    # 16 is 15 % better than 8 by its median, but its rounds spread ±40 %: not a measured gain.
    samples = noisy(knee_cost, noise=0.01, sizes=(1, 2, 4, 8, 16))
    samples[16] = [samples[8][i] * 2 / f for i, f in enumerate([1.15, 0.7, 1.6, 1.15, 0.75])]
    assert decide(samples, serving_cpus=2).config.max_batch_size == 8
    samples[16] = [samples[8][i] * 2 / 1.5 for i in range(5)]  # a steady 50 % gain is one
    assert decide(samples, serving_cpus=2).config.max_batch_size == 16


def test_a_size_that_costs_more_than_the_latency_budget_is_never_chosen():
    # A call's cost is nearly all fixed overhead: every doubling pays, up to 256.
    overhead = noisy(lambda b: 1e-3 + 1e-5 * b, noise=0.02, sizes=(1, 2, 4, 8, 16, 32, 64, 128, 256))
    config = decide(overhead, serving_cpus=2).config
    assert config.max_batch_size == 256  # 1.0 + 2.56 = 3.6 single calls: within the budget
    costly = noisy(lambda b: 1e-3 + 1e-4 * b, noise=0.02, sizes=(1, 2, 4, 8, 16, 32, 64, 128))
    config = decide(costly, serving_cpus=2).config
    assert config.max_batch_size == 64  # 7.4 single calls; 128 would cost 13.8


def test_robust_statistics_ignore_one_outlying_round():
    median, spread = robust([1.0, 1.02, 0.98, 1.01, 5.0])
    assert median == pytest.approx(1.01) and spread < 0.05


class FakeClock:
    """Wall and CPU clocks that move only when the fake model runs."""

    def __init__(self, cost, busy: float = 1.0):
        self.now = self.cpu = 0.0
        self.cost, self.busy, self.calls = cost, busy, []

    def wall(self) -> float:
        return self.now

    def process(self) -> float:
        return self.cpu

    def run(self, batch: int) -> None:
        self.calls.append(batch)
        self.cpu += self.cost(batch)
        self.now += self.cost(batch) * self.busy  # a busy machine stretches wall time, not CPU time


def _sweep(clock: FakeClock, budget: float = 8.0, max_batch: int = 256):
    return sweep(clock.run, budget, max_batch=max_batch, clock=clock.wall, cpu_clock=clock.process)


def test_the_sweep_interleaves_rounds_over_every_probed_size_within_its_budget():
    clock = FakeClock(knee_cost)
    samples = _sweep(clock, budget=8.0)
    sizes = sorted(samples.cost)
    assert sizes[:4] == [1, 2, 4, 8] and len(sizes) >= 6  # past the knee, until throughput stays flat
    assert all(len(v) == batching.ROUNDS for v in samples.cost.values())
    assert clock.now <= 8.0 * 1.1
    # rounds alternate direction: the last size of round 1 is the first of round 2
    timed = clock.calls[2 * len(sizes) :]
    first_round = [b for i, b in enumerate(timed) if i == 0 or b != timed[i - 1]][: len(sizes)]
    assert first_round == sizes
    assert samples.cost[8][0] == pytest.approx(knee_cost(8))


def test_repeated_sweeps_on_a_fixed_fake_clock_decide_the_same():
    decisions = []
    for _ in range(5):
        samples = _sweep(FakeClock(knee_cost, busy=2.0))
        decision = decide(samples.cost, serving_cpus=2, wall=samples.wall)
        decisions.append(decision.config)
    assert decisions[0] is not None and decisions[0].max_batch_size == 8
    assert all(d == decisions[0] for d in decisions)
    assert decisions[0].batch_timeout_micros == round(knee_cost(8) * 2.0 * 1e6)  # wall, not CPU


def test_a_slow_model_sweeps_only_the_sizes_that_fit_its_budget():
    clock = FakeClock(lambda b: 0.05 * b)  # 50 ms per example
    samples = _sweep(clock, budget=3.0)
    assert 1 <= len(samples.cost) <= 3 and clock.now < 3.0 * 1.5


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


def _result(decision, load=None, file=BATCHING_PARAMS_FILE):
    from dataclasses import asdict

    out = {
        "points": [{**asdict(s), "throughput": s.throughput} for s in decision.curve],
        "serving_cpus": 2,
        "decision": decision.reason,
        "throughput_batch_1": decision.curve[0].throughput,
        "throughput_chosen": decision.chosen.throughput,
        "publish": decision.config is not None and (load is None or load["pays"]),
    }
    if decision.config:
        out["parameters"] = asdict(decision.config)
    if load:
        out["load_test"] = load
    if out["publish"] and file:
        out["file"] = file
    return out


def _load(pays: bool):
    side = {"throughput": 900.0, "p50_ms": 9.0, "p99_ms": 20.0, "requests": 2700}
    alone = {"throughput": 300.0 if pays else 1000.0, "p50_ms": 30.0, "p99_ms": 60.0, "requests": 900}
    verdict = "batching pays: ..." if pays else "batching does not pay under load on these CPUs: ..."
    return {"clients": 16, "pairs": 3, "batched": side, "unbatched": alone, "pays": pays, "verdict": verdict}


def test_report_section_has_both_tables_both_charts_and_the_parameters():
    decision = decide(noisy(knee_cost, noise=0.0), serving_cpus=2)
    section = "\n".join(batching_markdown(_result(decision, _load(pays=True))))
    assert "| 8 |" in section and "**max_batch_size**" in section
    assert section.count("data:image/svg+xml;base64,") == 2
    assert "| batched | 900 | 9.00 | 20.00 |" in section and "| unbatched | 300 |" in section
    assert "max_batch_size: 8" in section and "--enable_per_model_batching_parameters" in section
    metrics = metrics_of(_result(decision, _load(pays=True)))
    assert metrics["max_batch_size"] == 8 and metrics["load_batched_requests_per_s"] == 900.0


def test_report_says_why_no_file_was_written():
    decision = decide(noisy(knee_cost, noise=0.0), serving_cpus=2)
    section = "\n".join(batching_markdown(_result(decision, _load(pays=False))))
    assert "No batching_params.pbtxt: batching does not pay under load" in section
    assert (
        "max_batch_size: 8" not in section and "**max_batch_size**" not in section
    )  # nothing as if published
    assert "| sweep's choice |" in section
    assert metrics_of(_result(decision, _load(pays=False)))["max_batch_size"] == 0
    flat = decide(noisy(lambda b: 1e-3 * b, noise=0.0), serving_cpus=2)
    assert "No batching_params.pbtxt: batching does not pay" in "\n".join(batching_markdown(_result(flat)))
    skipped = "\n".join(
        batching_markdown({"skipped": "not batchable: input 'x' has no variable batch dimension"})
    )
    assert "No batching_params.pbtxt written: not batchable" in skipped
