"""The measuring discipline shared by every tier: interleaved, rotating rounds; medians;
ratios computed within a round, then the median taken."""

from __future__ import annotations

import gc
import statistics
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Sequence

__all__ = [
    "ON_TRIO",
    "Config",
    "ScenarioResult",
    "SubjectResult",
    "count_hops",
    "interleave",
    "log",
    "matches",
    "median_or_none",
    "paired_ratios",
    "versus",
]

MiB = 1024 * 1024

# Display order of the subjects, everywhere. "... on trio": the same subject driven on a
# trio run instead of an asyncio loop (the in-process WSGI-to-ASGI tier).
ON_TRIO = " on trio"
SUBJECT_ORDER = ("bridge", "bridge" + ON_TRIO, "a2wsgi", "asgiref", "baseline", "baseline" + ON_TRIO)


@dataclass
class Config:
    quick: bool
    rounds: int | None  # None: each scenario's default for the mode
    only: list[str]
    duration: float | None  # server tier: seconds of load per measurement
    client: str  # server tier: "auto", "wrk" or "python"
    hop_sites: bool = False  # record where each counted wake-up comes from

    def rounds_for(self, full: int, quick: int) -> int:
        if self.rounds is not None:
            return self.rounds
        return quick if self.quick else full


@dataclass
class SubjectResult:
    """One subject in one scenario: a value per round, in the scenario's unit."""

    values: list[float]
    median: float
    ratios: list[float] = field(default_factory=list)  # per round, to the reference
    ratio: float | None = None  # median of ``ratios``
    hops: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScenarioResult:
    id: str
    tier: str  # "inprocess" or "server"
    direction: str  # "WSGI to ASGI" or "ASGI to WSGI"
    title: str
    unit: str
    better: str  # "lower" or "higher"
    reference: str | None  # the subject the ratios are taken to
    rounds: int
    per_round: str  # what one measurement is, in words
    subjects: dict[str, SubjectResult]
    # bridge against a2wsgi: median over rounds of how many times faster bridge is
    speedup: float | None = None
    speedups: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def log(message: str) -> None:
    """Progress goes to stderr; stdout carries only the tables."""
    print(message, file=sys.stderr, flush=True)


def matches(scenario_id: str, patterns: Sequence[str]) -> bool:
    """``--only``: a pattern selects a scenario when it is a substring of its id
    (``hello``, ``a2w.``, ``server``) or an fnmatch pattern (``w2a.*mib*``)."""
    if not patterns:
        return True
    import fnmatch

    return any(p in scenario_id or fnmatch.fnmatchcase(scenario_id, p) for p in patterns)


def median_or_none(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def paired_ratios(values: Sequence[float], reference: Sequence[float]) -> list[float]:
    """Round by round, ``values[i] / reference[i]``: the two were measured in the same
    round, so drift in the machine's speed cancels out (a zero reference is skipped)."""
    return [value / ref for value, ref in zip(values, reference) if ref]


def versus(results: dict[str, SubjectResult], name: str, other: str) -> None:
    """Record ``name``'s per-round ratios to ``other`` and their median, in
    ``extra["vs_<other>"]`` and ``extra["vs_<other>_median"]`` (nothing when either
    subject is missing or failed): a second comparison beside ``ratio``, which is to
    the scenario's reference."""
    ours, theirs = results.get(name), results.get(other)
    if ours is None or theirs is None or not ours.values or not theirs.values:
        return
    ratios = paired_ratios(ours.values, theirs.values)
    ours.extra[f"vs_{other}"] = ratios
    ours.extra[f"vs_{other}_median"] = median_or_none(ratios)


def interleave(
    names: Sequence[str],
    measure: Callable[[str], float],
    rounds: int,
    *,
    reference: str | None,
    better: str,
    warmup: Callable[[str], object] | None = None,
    slices: int = 1,
    after_round: Callable[[int], object] | None = None,
) -> tuple[dict[str, SubjectResult], list[float]]:
    """Measure every subject once per round, in an order that rotates each round, so
    drift in the machine's speed hits every subject alike. Returns the results and the
    per-round speed-ups of bridge over a2wsgi (empty unless both are measured).

    With ``slices``, a round is ``slices`` passes over the subjects (each pass in a
    rotated order), ``measure`` is called once per pass and the round's value is the
    mean: the subjects' measurements of one round interleave finely, so a burst of load
    from elsewhere on the machine hits them all, and the per-round ratios stay honest.

    A subject that raises (a bad response, an error) is reported as failed, with no
    figures, and left out of the remaining rounds; the others carry on. ``after_round(r)``
    is called after each round (progress, for long rounds)."""
    names = list(names)
    failed: dict[str, str] = {}

    def fail(name: str, exc: Exception) -> None:
        failed[name] = f"{type(exc).__name__}: {exc}"
        log(f"    {name} FAILED: {failed[name]}")

    if warmup is not None:
        for name in names:
            try:
                warmup(name)
            except Exception as exc:
                fail(name, exc)
    values: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        gc.collect()
        sums = dict.fromkeys(names, 0.0)
        for piece in range(slices):
            shift = (r + piece) % len(names)
            for name in names[shift:] + names[:shift]:
                if name in failed:
                    continue
                try:
                    sums[name] += measure(name)
                except Exception as exc:
                    fail(name, exc)
        for name in names:
            if name not in failed:
                values[name].append(sums[name] / slices)
        if after_round is not None:
            after_round(r)
    results: dict[str, SubjectResult] = {}
    for name in names:
        if name in failed:
            results[name] = SubjectResult(values=[], median=float("nan"), extra={"failed": failed[name]})
            continue
        result = SubjectResult(values=values[name], median=statistics.median(values[name]))
        if reference is not None and reference not in failed and reference in values:
            result.ratios = paired_ratios(values[name], values[reference])
            result.ratio = median_or_none(result.ratios)
        results[name] = result
    speedups: list[float] = []
    if "bridge" in values and "a2wsgi" in values and not {"bridge", "a2wsgi"} & set(failed):
        ours, theirs = values["bridge"], values["a2wsgi"]
        speedups = paired_ratios(theirs, ours) if better == "lower" else paired_ratios(ours, theirs)
    return results, speedups


def count_hops(
    names: Sequence[str],
    results: dict[str, SubjectResult],
    serve: Callable[[str, int], object],
    requests: int,
    *,
    sites: bool = False,
) -> None:
    """One counted run per subject (after a short warm-up), outside the timed rounds:
    the counter's wrappers cost time. Fills in ``results[name].hops``."""
    from .hops import HopCounter

    with HopCounter(sites=sites) as counter:
        for name in names:
            if "failed" in results[name].extra:
                continue

            def counted(name: str = name) -> object:
                return serve(name, requests)

            try:
                serve(name, min(2, requests))
                results[name].hops = counter.count(counted, requests).as_dict()
            except Exception as exc:
                results[name].extra["failed"] = f"while counting hops: {type(exc).__name__}: {exc}"
                log(f"    {name} FAILED while counting hops: {exc!r}")


def ordered(names: Iterable[str]) -> list[str]:
    """Subjects in display order: bridge first, the reference last, others between."""
    rank = {name: i for i, name in enumerate(SUBJECT_ORDER)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def run_inprocess(
    scenario: Any,
    config: Config,
    *,
    direction: str,
    subjects: dict[str, Any],
    close: Callable[[dict[str, Any]], None],
    batch: Callable[[Any, Any, int], float],
    peak: Callable[[Any, Any], tuple[float, float]],
    memory_warmup: Any = None,
) -> ScenarioResult:
    """Run one in-process scenario for every subject, interleaved, and close them.

    ``batch(subject, scenario, n)`` serves n requests and returns the seconds taken;
    ``peak(subject, scenario)`` serves one under tracemalloc and returns (MiB, seconds);
    ``memory_warmup`` is the small scenario that warms up a memory scenario's paths.
    """
    memory = scenario.kind == "memory"
    names = ordered(subjects)
    n = scenario.quick_requests if config.quick else scenario.requests
    speedups: list[float] = []
    try:
        if memory:
            rounds = config.rounds_for(full=3, quick=1)
            seconds: dict[str, list[float]] = {name: [] for name in names}

            def measure(name: str) -> float:
                mib, took = peak(subjects[name], scenario)
                seconds[name].append(took)
                return mib

            results, _ = interleave(
                names,
                measure,
                rounds,
                reference=None,
                better="lower",
                warmup=lambda name: batch(subjects[name], memory_warmup, 1),
            )
            for name in names:
                results[name].extra["seconds_under_tracemalloc"] = seconds[name]
            unit, per_round = "MiB", "peak traced memory (tracemalloc) while serving one request"
        else:
            concurrent = scenario.kind == "concurrent"
            rounds = config.rounds_for(full=21 if not concurrent else 11, quick=5 if not concurrent else 3)
            slices = 1 if concurrent else scenario.slices
            per_slice = max(1, n // slices)
            scale = 1e3 if concurrent else 1e6 / per_slice

            def warm(name: str) -> None:
                for _ in range(1 if config.quick else 2):
                    batch(subjects[name], scenario, n if concurrent else max(1, n // 10))

            results, speedups = interleave(
                names,
                lambda name: batch(subjects[name], scenario, per_slice) * scale,
                rounds,
                reference="baseline",
                better="lower",
                warmup=warm,
                slices=slices,
            )
            for name in names:  # each trio subject against the same subject on asyncio
                if name.endswith(ON_TRIO):
                    versus(results, name, name.removesuffix(ON_TRIO))
            unit = "ms/batch" if concurrent else "µs/req"
            per_round = (
                f"{n} requests at once"
                if concurrent
                else f"{per_slice * slices} requests one after another, in {slices} slices interleaved "
                "with the other subjects'"
            )

            def serve(name: str, count: int) -> object:
                return batch(subjects[name], scenario, count)

            count_hops(names, results, serve, scenario.count_requests, sites=config.hop_sites)
    finally:
        close(subjects)
    return ScenarioResult(
        id=scenario.id,
        tier="inprocess",
        direction=direction,
        title=scenario.title,
        unit=unit,
        better="lower",
        reference=None if memory else "baseline",
        rounds=rounds,
        per_round=per_round,
        subjects={name: results[name] for name in names},
        speedup=None if memory or not speedups else statistics.median(speedups),
        speedups=[] if memory else speedups,
    )
