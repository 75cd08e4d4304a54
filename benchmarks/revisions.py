"""An in-process scenario of bridge (the hello, by default) at several git revisions, side
by side, in one process pinned to one CPU:

    python -m benchmarks.revisions 2a8e793 HEAD            # both directions
    python -m benchmarks.revisions HEAD~3 HEAD --direction a2w --rounds 60
    python -m benchmarks.revisions HEAD HEAD               # an A/A run: the noise
    python -m benchmarks.revisions 2a8e793 HEAD --scenario echo-1mib

Why: comparing revisions with ``python -m benchmarks`` in turn, one process each, mixes
the code's cost with where the kernel puts each process's threads. On two cores an
``AsgiToWsgi`` hello's ratio to the baseline was bimodal: the same code gave 0.58 and 0.93
in one process, depending only on the adapter instance (each has its own loop thread),
and five full runs of one revision spread from 0.57 to 0.99. Pinned to one CPU, the
threads take turns, so the time per request is the Python work and the thread switches
each revision costs: two copies of one revision then agree within 0.02 to 0.05
(give each revision twice: the spread of its copies is the run's noise).

Each revision's ``bridge/`` is extracted with ``git archive`` into a package of its own
(``bridge`` imports itself relatively, so the copies do not mix) and wraps the in-process
tier's app of the scenario (``--scenario``: one of the tier's sequential rows); the
no-adapter baseline is the tier's. Rounds of ``--requests`` sequential requests per
subject (default: the tier's full-mode count for the scenario), in an order that
rotates each round; each revision's time as a ratio to the baseline's in the same round,
then the median and quartiles.
Python and the other packages are this environment's: only ``bridge/`` varies.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from functools import partial
from typing import Any, Callable

from . import scenarios_a2w as a2w
from . import scenarios_w2a as w2a
from .servers import ROOT


def extract(revision: str, into: str, name: str) -> None:
    """``bridge/`` at ``revision``, as the package ``name`` under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision, "bridge"],
        check=True,
        capture_output=True,
    ).stdout
    target = os.path.join(into, name)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            if member.name.startswith("bridge/") and (member.isfile() or member.isdir()):
                member.name = name + member.name[len("bridge") :]
                if hasattr(tarfile, "data_filter"):  # (Python 3.12 warns without a filter)
                    tar.extract(member, into, filter="data")
                else:
                    tar.extract(member, into)
    if not os.path.isfile(os.path.join(target, "__init__.py")):
        raise SystemExit(f"{revision} has no bridge/ package")


SCENARIOS = ("hello", "out-1mib", "echo-1mib")  # the in-process tier's sequential rows


def compare(
    packages: dict[str, Any], direction: str, scenario_name: str, rounds: int, requests: int | None
) -> tuple[dict[str, list[float]], float, int]:
    """Per revision, its ratio to the baseline in each round; the baseline's median time
    per request (seconds); and the requests per subject per round."""
    loop: asyncio.AbstractEventLoop | None = None
    driver: a2w.Driver | None = None
    subjects: dict[str, Any]
    batch: Callable[[Any, int], float]  # seconds for n sequential requests, each checked
    if direction == "a2w":
        scenario = _scenario(a2w.SCENARIOS, f"a2w.{scenario_name}")
        subjects = {
            label: package.AsgiToWsgi(scenario.app, lifespan="off") for label, package in packages.items()
        }
        subjects["baseline"] = a2w.Baseline(scenario.app)
        driver = a2w.Driver()
        batch = partial(driver.batch, scenario=scenario)
    else:
        scenario = _scenario(w2a.SCENARIOS, f"w2a.{scenario_name}")
        loop = asyncio.new_event_loop()
        subjects = {label: package.WsgiToAsgi(scenario.app) for label, package in packages.items()}
        subjects["baseline"] = w2a.Baseline(scenario.app)
        batch = partial(w2a.run_batch, loop, scenario=scenario)
    if requests is None:
        requests = scenario.requests
    try:
        for app in subjects.values():
            batch(app, n=requests)  # warm-up: threads started, caches filled
        order = list(subjects)
        ratios: dict[str, list[float]] = {label: [] for label in packages}
        baseline: list[float] = []
        for round_ in range(rounds):
            shift = round_ % len(order)
            times = {label: batch(subjects[label], n=requests) for label in order[shift:] + order[:shift]}
            baseline.append(times["baseline"])
            for label in packages:
                ratios[label].append(times[label] / times["baseline"])
        return ratios, statistics.median(baseline) / requests, requests
    finally:
        for app in subjects.values():
            close = getattr(app, "close", None)
            if close is not None:
                close()
        if loop is not None:
            loop.close()
        if driver is not None:
            driver.close()


def _scenario(scenarios: list[Any], scenario_id: str) -> Any:
    """The in-process tier's scenario of that id: its app, request and checks."""
    return next(scenario for scenario in scenarios if scenario.id == scenario_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.revisions", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("revisions", nargs="+", help="git revisions (the same one twice: an A/A run)")
    parser.add_argument("--direction", choices=("a2w", "w2a", "both"), default="both")
    parser.add_argument("--scenario", choices=SCENARIOS, default="hello")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument(
        "--requests",
        type=int,
        default=None,
        help="sequential requests per subject per round (default: the tier's, 400 hellos or 20 MiB)",
    )
    parser.add_argument(
        "--cpu", type=int, default=None, help="the CPU to pin to (default: the first allowed)"
    )
    args = parser.parse_args(argv)
    if args.rounds < 2 or (args.requests is not None and args.requests < 1):
        parser.error("--rounds must be at least 2 (quartiles), --requests at least 1")

    allowed = sorted(os.sched_getaffinity(0))
    cpu = allowed[0] if args.cpu is None else args.cpu
    os.sched_setaffinity(0, {cpu})  # before any thread starts: they inherit it
    labels = [f"{i + 1}. {revision}" for i, revision in enumerate(args.revisions)]
    with tempfile.TemporaryDirectory(prefix="bridge-revisions-") as tmp:
        for i, revision in enumerate(args.revisions):
            extract(revision, tmp, f"bridge_rev{i}")
        sys.path.insert(0, tmp)
        packages = {label: importlib.import_module(f"bridge_rev{i}") for i, label in enumerate(labels)}
        directions = ("w2a", "a2w") if args.direction == "both" else (args.direction,)
        print(f"Pinned to CPU {cpu}; {args.rounds} rounds per subject.\n")
        print(
            "| direction | revision | ratio to the baseline: median | quartiles "
            "| baseline per request | requests per round |"
        )
        print("|---|---|---|---|---|---|")
        for direction in directions:
            ratios, baseline, requests = compare(
                packages, direction, args.scenario, args.rounds, args.requests
            )
            for label in labels:
                values = ratios[label]
                q1, _, q3 = statistics.quantiles(values, n=4)
                print(
                    f"| {direction} {args.scenario} | {label} | {statistics.median(values):.3f}x | "
                    f"{q1:.3f} to {q3:.3f} | {baseline * 1e6:.1f} µs | {requests} |"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
