"""An in-process scenario of bridge (the hello, by default) at several git revisions, each
in processes of its own pinned to one CPU, against the no-adapter baseline in the same
process:

    python -m benchmarks.revisions 2a8e793 HEAD            # both directions
    python -m benchmarks.revisions HEAD~3 HEAD --direction a2w --processes 12
    python -m benchmarks.revisions HEAD HEAD               # an A/A run: the noise
    python -m benchmarks.revisions 2a8e793 HEAD --scenario echo-1mib

Why: comparing revisions with ``python -m benchmarks`` in turn mixes the code's cost with
where the kernel puts each process's threads. On two cores an ``AsgiToWsgi`` hello's ratio
to the baseline was bimodal: the same code gave 0.58 and 0.93 in one process, depending
only on the adapter instance, and five full runs of one revision spread from 0.57 to 0.99.
Pinned to one CPU the threads take turns, but a process still settles into one of two
patterns of thread switches (on one machine, a ``WsgiToAsgi`` hello took about 4.7
voluntary and 3.5 involuntary switches per request in one, 3.8 and 2.5 in the other, and
its time followed them: 49-51 µs against 43-46), and which one depends on the process and
on the copy of the code (four copies of one revision in one process measured 1.18 to 1.28
times the baseline). So each revision runs in ``--processes`` processes, in turns with the
others, and the figure is the median of the processes' medians (one process's median
ratio over ``--rounds`` rounds); the lowest and highest process show the spread.
``--cpu all`` leaves the processes on every CPU, as ``python -m benchmarks`` does.

Each revision's ``bridge/`` is extracted with ``git archive`` into a package of its own
(``bridge`` imports itself relatively) and wraps the in-process tier's app of the scenario
(``--scenario``: one of the tier's sequential rows); the no-adapter baseline is the tier's.
A round is ``--requests`` sequential requests (default: the tier's full-mode count for the
scenario) to the revision and as many to the baseline, which goes first in every other
round; its ratio is the revision's time over the baseline's. Python and the other packages
are this environment's: only ``bridge/`` varies.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import io
import json
import os
import resource
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
    package: Any, direction: str, scenario_name: str, rounds: int, requests: int | None
) -> tuple[list[float], float, int, float]:
    """The revision's ratio to the baseline in each round; the baseline's median time
    per request (seconds); the requests per subject per round; and the process's thread
    switches (voluntary and involuntary) per request to the revision."""
    loop: asyncio.AbstractEventLoop | None = None
    driver: a2w.Driver | None = None
    subject: Any
    baseline: Any
    batch: Callable[[Any, int], float]  # seconds for n sequential requests, each checked
    if direction == "a2w":
        scenario = _scenario(a2w.SCENARIOS, f"a2w.{scenario_name}")
        subject = package.AsgiToWsgi(scenario.app, lifespan="off")
        baseline = a2w.Baseline(scenario.app)
        driver = a2w.Driver()
        batch = partial(driver.batch, scenario=scenario)
    else:
        scenario = _scenario(w2a.SCENARIOS, f"w2a.{scenario_name}")
        loop = asyncio.new_event_loop()
        subject = package.WsgiToAsgi(scenario.app)
        baseline = w2a.Baseline(scenario.app)
        batch = partial(w2a.run_batch, loop, scenario=scenario)
    if requests is None:
        requests = scenario.requests
    try:
        batch(subject, n=requests)  # warm-up: threads started, caches filled
        batch(baseline, n=requests)
        ratios: list[float] = []
        baseline_times: list[float] = []
        switches = 0
        for round_ in range(rounds):
            if round_ % 2:  # (which goes first alternates)
                base_time = batch(baseline, n=requests)
            before = _switches()
            subject_time = batch(subject, n=requests)
            switches += _switches() - before
            if not round_ % 2:
                base_time = batch(baseline, n=requests)
            baseline_times.append(base_time)
            ratios.append(subject_time / base_time)
        return ratios, statistics.median(baseline_times) / requests, requests, switches / (rounds * requests)
    finally:
        for app in (subject, baseline):
            close = getattr(app, "close", None)
            if close is not None:
                close()
        if loop is not None:
            loop.close()
        if driver is not None:
            driver.close()


def _switches() -> int:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_nvcsw + usage.ru_nivcsw


def _scenario(scenarios: list[Any], scenario_id: str) -> Any:
    """The in-process tier's scenario of that id: its app, request and checks."""
    return next(scenario for scenario in scenarios if scenario.id == scenario_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.revisions", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("revisions", nargs="*", help="git revisions (the same one twice: an A/A run)")
    parser.add_argument("--direction", choices=("a2w", "w2a", "both"), default="both")
    parser.add_argument("--scenario", choices=SCENARIOS, default="hello")
    parser.add_argument(
        "--processes", type=int, default=8, help="processes per revision and direction (default 8)"
    )
    parser.add_argument("--rounds", type=int, default=20, help="rounds per process (default 20)")
    parser.add_argument(
        "--requests",
        type=int,
        default=None,
        help="sequential requests per subject per round (default: the tier's, 400 hellos or 20 MiB)",
    )
    parser.add_argument(
        "--cpu",
        default=None,
        help="the CPU to pin to (default: the first allowed), or 'all': no pinning, the setting of "
        "python -m benchmarks, where the processes' spread is wider",
    )
    parser.add_argument("--child", nargs=2, metavar=("DIR", "PACKAGE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.processes < 1 or (args.requests is not None and args.requests < 1):
        parser.error("--rounds, --processes and --requests must be at least 1")

    allowed = sorted(os.sched_getaffinity(0))
    cpus = set(allowed) if args.cpu == "all" else {allowed[0] if args.cpu is None else int(args.cpu)}
    if args.child is not None:
        return _child(args, cpus)
    if not args.revisions:
        parser.error("give at least one git revision")
    labels = [f"{i + 1}. {revision}" for i, revision in enumerate(args.revisions)]
    directions = ("w2a", "a2w") if args.direction == "both" else (args.direction,)
    with tempfile.TemporaryDirectory(prefix="bridge-revisions-") as tmp:
        for i, revision in enumerate(args.revisions):
            extract(revision, tmp, f"bridge_rev{i}")
        print(
            f"On CPUs {sorted(cpus)}; per revision and direction, {args.processes} processes of "
            f"{args.rounds} rounds.\n"
        )
        print(
            "| direction | revision | ratio to the baseline: median of the processes' medians "
            "| lowest to highest process | thread switches per request | baseline per request "
            "| requests per round |"
        )
        print("|---|---|---|---|---|---|---|")
        for direction in directions:
            medians: dict[int, list[float]] = {i: [] for i in range(len(labels))}
            switches: dict[int, list[float]] = {i: [] for i in range(len(labels))}
            baselines: list[float] = []
            requests = 0
            for process in range(args.processes):
                order = list(range(len(labels)))
                shift = process % len(order)
                for i in order[shift:] + order[:shift]:
                    ratio, baseline, requests, switched = _run_child(
                        tmp, f"bridge_rev{i}", direction, args, cpus
                    )
                    medians[i].append(ratio)
                    switches[i].append(switched)
                    baselines.append(baseline)
            for i, label in enumerate(labels):
                values = medians[i]
                print(
                    f"| {direction} {args.scenario} | {label} | {statistics.median(values):.3f}x | "
                    f"{min(values):.3f} to {max(values):.3f} | {statistics.median(switches[i]):.2f} | "
                    f"{statistics.median(baselines) * 1e6:.1f} µs | {requests} |"
                )
    return 0


def _run_child(
    tmp: str, package: str, direction: str, args: argparse.Namespace, cpus: set[int]
) -> tuple[float, float, int, float]:
    """One process's median ratio, its baseline's median time per request, the requests
    per round, and its thread switches per request to the revision."""
    command = [sys.executable, "-m", "benchmarks.revisions", "--child", tmp, package]
    command += ["--direction", direction, "--scenario", args.scenario, "--rounds", str(args.rounds)]
    command += ["--cpu", "all" if len(cpus) > 1 else str(min(cpus))]
    if args.requests is not None:
        command += ["--requests", str(args.requests)]
    done = subprocess.run(command, cwd=str(ROOT), capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"measuring {package} ({direction}) failed:\n{done.stderr}")
    ratio, baseline, requests, switched = json.loads(done.stdout.strip().splitlines()[-1])
    return float(ratio), float(baseline), int(requests), float(switched)


def _child(args: argparse.Namespace, cpus: set[int]) -> int:
    """In a process of its own: one revision against the baseline; prints the median
    ratio, the baseline's median time per request, the requests per round and the
    thread switches per request to the revision (JSON)."""
    os.sched_setaffinity(0, cpus)  # before any thread starts: they inherit it
    directory, name = args.child
    sys.path.insert(0, directory)
    package = importlib.import_module(name)
    ratios, baseline, requests, switched = compare(
        package, args.direction, args.scenario, args.rounds, args.requests
    )
    print(json.dumps([statistics.median(ratios), baseline, requests, switched]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
