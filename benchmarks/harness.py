"""The measuring discipline shared by every tier: interleaved, rotating rounds; medians;
ratios computed within a round, then the median taken."""

from __future__ import annotations

import gc
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

__all__ = [
    "Config",
    "ScenarioResult",
    "SubjectResult",
    "interleave",
    "log",
    "matches",
    "median_or_none",
]

MiB = 1024 * 1024

# Display order of the subjects, everywhere.
SUBJECT_ORDER = ("bridge", "a2wsgi", "asgiref", "baseline")


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


def interleave(
    names: Sequence[str],
    measure: Callable[[str], float],
    rounds: int,
    *,
    reference: str | None,
    better: str,
    warmup: Callable[[str], object] | None = None,
    collect: bool = True,
) -> tuple[dict[str, SubjectResult], list[float]]:
    """Measure every subject once per round, in an order that rotates each round, so
    drift in the machine's speed hits every subject alike. Returns the results and the
    per-round speed-ups of bridge over a2wsgi (empty unless both are measured)."""
    names = list(names)
    if warmup is not None:
        for name in names:
            warmup(name)
    values: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            if collect:
                gc.collect()
            values[name].append(measure(name))
    results: dict[str, SubjectResult] = {}
    for name in names:
        result = SubjectResult(values=values[name], median=statistics.median(values[name]))
        if reference is not None and reference in values:
            result.ratios = [v / ref for v, ref in zip(values[name], values[reference])]
            result.ratio = statistics.median(result.ratios)
        results[name] = result
    speedups: list[float] = []
    if "bridge" in values and "a2wsgi" in values:
        for ours, theirs in zip(values["bridge"], values["a2wsgi"]):
            speedups.append(theirs / ours if better == "lower" else ours / theirs)
    return results, speedups


def timed(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def ordered(names: Sequence[str]) -> list[str]:
    """Subjects in display order: bridge first, the reference last, others between."""
    rank = {name: i for i, name in enumerate(SUBJECT_ORDER)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))
