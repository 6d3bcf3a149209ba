"""The batching decision: from timed samples per batch size to TF Serving's parameters, or to no file.

A pure function of its inputs (no clock, no model), so it is tested on synthetic noisy curves. The samples
are what the sweep measured: for each batch size, the CPU seconds of one call in each interleaved round.

Throughput is counted in examples per CPU-second. Batching is for a server kept busy by concurrent
requests, where every core is working and the CPU time an example costs is what bounds throughput; and
CPU time is what other work on a shared machine disturbs least (it steals wall time from the sweep, not
the CPU time a call needs). Wall time, measured alongside, is the latency a request sees.

- Per size, the median of its rounds is its cost (robust to a round hit by other work), and half the
  interquartile range relative to it is the size's spread (its noise, as measured).
- Sizes are compared round by round: the gain of a bigger size over the chosen one is the median of their
  per-round throughput ratios (other work on the machine slows both sizes of a round alike), its spread
  the ratios' half-IQR. A larger size replaces the chosen one only when that gain is both worth its latency
  (WORTH_DOUBLING per doubling, compounded over the doublings between the two) by more than its spread: a
  gain the noise could have made is no gain. Sizes that do not qualify do not end
  the search, so one noisy size between two good ones decides nothing.
- Only sizes whose call costs at most LATENCY_BUDGET (8) calls of batch 1 are candidates: a request may
  wait a batch's time for the batch to fill, then its compute, and a larger batch's throughput does not
  pay for that. (Sizes double their cost per doubling past the knee, so this bound falls far from any
  size's noise and keeps the choice where it is from run to run.)
- max_batch_size 1 means batching does not pay for this model on these CPUs: no file (a max_batch_size: 1
  file only adds a queue in front of every request).
- allowed_batch_sizes: the swept sizes up to the chosen one (TF Serving pads a batch up to the next one);
  batch_timeout_micros: the chosen size's median wall latency (a request waits at most about one batch's
  compute for others to join); num_batch_threads: the serving CPUs; max_enqueued_batches: about a second
  of queued batches on each thread.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kfp_tfserving.components.check_signatures.batching_params import BatchingConfig

WORTH_DOUBLING = 1.10  # each doubling of the batch must buy at least 10 % more throughput
# A batch may cost at most this many single requests: past it a request that waits for its batch (up to
# batch_timeout_micros, one batch's time) and then for its compute waits too long, whatever it buys.
LATENCY_BUDGET = 8.0
QUEUE_SECONDS = 1.0
MAX_ENQUEUED = 1000


@dataclass(frozen=True)
class SizeStats:
    batch: int
    cpu_ms: float  # median CPU time of one call over the rounds
    spread: float  # half the interquartile range of the rounds' CPU times, relative to their median
    rounds: int
    latency_ms: float  # median wall time of one call

    @property
    def throughput(self) -> float:
        """Examples per CPU-second: what each serving core sustains when requests keep it busy."""
        return self.batch / (self.cpu_ms / 1000) if self.cpu_ms > 0 else math.inf


@dataclass(frozen=True)
class Decision:
    curve: list[SizeStats]
    config: BatchingConfig | None  # None: batching does not pay, no file
    reason: str  # one sentence: why this size, or why no file

    @property
    def chosen(self) -> SizeStats:
        size = self.config.max_batch_size if self.config else 1
        return next(s for s in self.curve if s.batch == size)


def robust(values: Sequence[float]) -> tuple[float, float]:
    """(median, half the interquartile range relative to the median) of the values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan, math.inf
    median = statistics.median(ordered)
    if len(ordered) >= 4:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:  # too few rounds for quartiles: the whole range stands for the noise
        q1, q3 = ordered[0], ordered[-1]
    return median, (q3 - q1) / 2 / median if median > 0 else 0.0


def size_stats(batch: int, cost: Sequence[float], wall: Sequence[float] | None = None) -> SizeStats:
    """One size's figures from its per-round CPU (and wall) seconds per call."""
    median, spread = robust(cost)
    latency = statistics.median(wall) if wall else median
    return SizeStats(batch, median * 1000, spread, len(cost), latency * 1000)


def paired_gain(samples: Mapping[int, Sequence[float]], smaller: int, bigger: int) -> tuple[float, float]:
    """(median, relative half-IQR) of `bigger`'s throughput over `smaller`'s, round by round.

    Both sizes were timed in the same rounds, close in time: a spell of other work on the machine slows
    both, and their ratio in that round keeps what the batch size changed.
    """
    pairs = zip(samples[smaller], samples[bigger], strict=False)
    return robust([(bigger / b) / (smaller / s) for s, b in pairs if s > 0 and b > 0])


def needed_gain(smaller: int, bigger: int, spread: float) -> float:
    """The throughput ratio `bigger` must beat to replace `smaller`: 10 % per doubling, plus its noise."""
    return WORTH_DOUBLING ** math.log2(bigger / smaller) * (1 + spread)


def decide(
    samples: Mapping[int, Sequence[float]],
    serving_cpus: int,
    variable_length: bool = False,
    wall: Mapping[int, Sequence[float]] | None = None,
) -> Decision:
    """The batching parameters the curve supports, or none (see the module's docstring).

    `samples`: per size, the CPU seconds of one call in each round; `wall`: the same calls' wall seconds
    (the latency a request sees; the CPU times stand for them when absent).
    """
    wall = wall or {}
    curve = [size_stats(b, samples[b], wall.get(b)) for b in sorted(samples) if samples[b]]
    if not curve:
        return Decision([], None, "nothing was measured")
    chosen = curve[0]
    affordable = [s for s in curve[1:] if s.cpu_ms <= LATENCY_BUDGET * curve[0].cpu_ms]
    for bigger in affordable:
        ratio, spread = paired_gain(samples, chosen.batch, bigger.batch)
        if ratio > needed_gain(chosen.batch, bigger.batch, spread):
            chosen = bigger
    if chosen.batch == 1 or curve[0].batch != 1:
        best = max(curve, key=lambda s: s.throughput)
        return Decision(
            curve,
            None,
            f"batching does not pay: no batch size beats batch 1 by more than its noise and "
            f"{WORTH_DOUBLING - 1:.0%} per doubling (best: {best.throughput:,.0f} examples/s at batch "
            f"{best.batch}, batch 1: {curve[0].throughput:,.0f})",
        )
    threads = max(1, serving_cpus)
    per_batch_seconds = max(chosen.latency_ms / 1000, 1e-6)
    config = BatchingConfig(
        max_batch_size=chosen.batch,
        batch_timeout_micros=max(1, round(chosen.latency_ms * 1000)),
        num_batch_threads=threads,
        max_enqueued_batches=max(
            threads, min(MAX_ENQUEUED, round(QUEUE_SECONDS / per_batch_seconds) * threads)
        ),
        allowed_batch_sizes=[s.batch for s in curve if s.batch <= chosen.batch],
        pad_variable_length_inputs=variable_length,
    )
    speedup = chosen.throughput / curve[0].throughput
    return Decision(
        curve,
        config,
        f"batch {chosen.batch} gives {speedup:.1f}x the throughput of batch 1 (spread ±{chosen.spread:.0%}); "
        f"no larger size within {LATENCY_BUDGET:.0f}x the cost of one request gains "
        f"{WORTH_DOUBLING - 1:.0%} per doubling beyond its noise",
    )
