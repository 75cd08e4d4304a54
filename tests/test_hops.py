"""Pin the cross-thread wake-ups per request that ``benchmarks/hops.py`` counts.

Why: a bridge's speed is decided by how often one thread must wake another (tens of
microseconds each, against a few of translation work), and a restructuring can add a
crossing without breaking any behaviour. This test counts them for bridge on the
in-process benchmark scenarios, through the benchmark's own apps, synthetic servers,
no-adapter baselines and ``harness.count_hops``, and fails when a count moves.

What is pinned, per request over the ``count_requests`` requests of the benchmark's
counted run, in each direction and on each backend (asyncio, and trio: ``WsgiToAsgi``
under ``trio.run``, ``AsgiToWsgi(backend="trio")``):

* a list response (``hello``: the WSGI app returns a one-element list; the ASGI app's
  one body message goes back to the WSGI server as one), a preloaded upload (the 1 MiB
  echo: 1 MiB is the default ``preload_body``, so the body is read before the app
  runs) and a streamed upload (the same echo, the adapter built with
  ``preload_body=0`` and, for ``WsgiToAsgi``, ``spool_body=0``): exact where exact
  (``PINS``), ranges otherwise (``test_w2a_streamed_upload_*``, ``A2W_BOUNDS``);
* the streamed responses (1 MiB out in 16 chunks), whose wake-ups happen only when one
  side found the other waiting, a race by design: ranges,
  with ceilings that one more crossing per chunk breaks
  (``test_w2a_streamed_response_*``, ``A2W_BOUNDS``).

The exact pins (WSGI to ASGI): hello and the preloaded echo cost 2 (1 to the thread +
1 to the loop) on both backends. ASGI to WSGI hands the app's events to the WSGI thread
through a ``Handoff`` that wakes it only when it waits, so there the count to the
thread is bounded, not exact (``A2W_BOUNDS``, ``test_a2w_wake_ups``); on trio it is one
higher, always: the app's task starts through the portal's ``start_task_soon``, which
waits for the loop to acknowledge (``trio.from_thread.run_sync``), where asyncio gets a
bare ``call_soon_threadsafe``.

Every baseline must count exactly 2 (1 + 1), on each backend: the counter's
self-check; if it fails, the counter is broken, not bridge. On trio the counter sees
``TrioToken.run_sync_soon`` (to the loop), the thread cache's ``start_thread_soon`` and
``SimpleQueue`` puts in the trio thread (to the thread); the trio baselines (one
``trio.to_thread.run_sync``, one ``trio.from_thread.run``) check exactly those.

The counter wraps ``call_soon_threadsafe`` on the loop's class, so bridge looks it up on
each call (``handoff.LoopRef.wake``): a method bound once, before the counter was
installed, would hide its wake-ups (it did, and the streamed figures read 4 and 18).

When a change deliberately alters a count: run
``python -m benchmarks --quick --tier inprocess --only w2a.hello --only w2a.out-1mib
--only w2a.echo-1mib --only a2w.hello --only a2w.out-1mib --only a2w.echo-1mib --no-png``
(asyncio, preloaded uploads; the benchmark has no trio or streamed-upload subjects:
this test's failure message gives those figures), check that its figures agree with
this test's failure message, update ``PINS`` (or the bounds in the range tests), and
put the figures (before and after) in the commit message. Never loosen a pin to make a
flaky count pass: a count that varies from run to run is a finding to report.

The benchmark's ``make_subjects`` functions also build the a2wsgi and asgiref subjects:
the small adapters below build only bridge and the baseline, and serve batches with the
benchmark's own ``scenarios_w2a.run_batch`` (``TrioLoop.batch`` on trio) and
``scenarios_a2w.Driver``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import pytest

from benchmarks import scenarios_a2w as a2w
from benchmarks import scenarios_w2a as w2a
from benchmarks.harness import SubjectResult, count_hops
from bridge import AsgiToWsgi, WsgiToAsgi

BACKENDS = ("asyncio", "trio")


@dataclass(frozen=True)
class Case:
    """A benchmark scenario, served by bridge built with ``options``."""

    scenario: str
    options: dict[str, Any] = field(default_factory=dict)


CASES = {
    "w2a.hello": Case("w2a.hello"),  # a list response
    "w2a.echo-1mib": Case("w2a.echo-1mib"),  # 1 MiB preloaded
    "w2a.echo-1mib-streamed": Case("w2a.echo-1mib", {"preload_body": 0, "spool_body": 0}),
    "w2a.out-1mib": Case("w2a.out-1mib"),
    "a2w.hello": Case("a2w.hello"),  # the response goes back as a one-element list
    "a2w.echo-1mib": Case("a2w.echo-1mib"),  # 1 MiB preloaded
    "a2w.echo-1mib-streamed": Case("a2w.echo-1mib", {"preload_body": 0}),
    "a2w.out-1mib": Case("a2w.out-1mib"),
}

# (case, backend): bridge's (to_thread, to_loop) wake-ups per request.
PINS: dict[tuple[str, str], tuple[int, int]] = {
    ("w2a.hello", "asyncio"): (1, 1),
    ("w2a.echo-1mib", "asyncio"): (1, 1),
    ("w2a.hello", "trio"): (1, 1),
    ("w2a.echo-1mib", "trio"): (1, 1),
}

# ASGI to WSGI, (case, backend): bridge's (to_thread, to_loop) bounds per request. The
# app's events reach the WSGI thread through a hand-off that wakes the thread only when
# it waits, so the count to the thread is a race by design (see test_a2w_wake_ups).
A2W_BOUNDS: dict[tuple[str, str], tuple[tuple[int, int], tuple[int, int]]] = {
    ("a2w.hello", "asyncio"): ((0, 1), (1, 1)),
    ("a2w.echo-1mib", "asyncio"): ((0, 1), (1, 1)),
    ("a2w.echo-1mib-streamed", "asyncio"): ((0, 5), (5, 5)),
    ("a2w.out-1mib", "asyncio"): ((0, 8), (1, 8)),
    ("a2w.hello", "trio"): ((1, 2), (1, 1)),
    ("a2w.echo-1mib", "trio"): ((1, 2), (1, 1)),
    ("a2w.echo-1mib-streamed", "trio"): ((1, 6), (5, 5)),
    ("a2w.out-1mib", "trio"): ((0, 9), (1, 8)),
}
BASELINE = (1, 1)  # one hop there, one back: the counter's self-check

# Requests served before counting. WSGI to ASGI first serves some at once through a slow
# wrapper of the app, so that they overlap and each worker pool (bridge's and the
# baseline's; trio's thread cache on trio) grows to several threads. With a single
# thread, a request now and then finds it not yet back from the last one, and the pool
# starts a thread, whose start-up signal to the loop (waiting in Thread.start) is a
# one-off extra wake-up: 1 more to the loop over a counted run (5 runs of this file in
# 40 failed so on the echo before). With two threads or more, one is always waiting
# when a request comes one at a time.
WARM_SEQUENTIAL = 5
WARM_AT_ONCE = 4
_OVERLAP = 0.02  # seconds each of those requests holds its thread

_W2A = {s.id: s for s in w2a.SCENARIOS}
_A2W = {s.id: s for s in a2w.SCENARIOS}

Counts = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """The synthetic ASGI server's loop, as ``scenarios_w2a.run`` makes it."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()  # bridge's worker threads leave once their loop is closed


@pytest.fixture(scope="module")
def driver() -> Iterator[a2w.Driver]:
    """The synthetic WSGI server (``scenarios_a2w.Driver``)."""
    driver = a2w.Driver()
    yield driver
    driver.close()


def _require(backend: str) -> None:
    if backend == "trio":
        pytest.importorskip("trio")


def _slowed(app: Callable[..., Any]) -> Callable[..., Any]:
    def slowed(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        time.sleep(_OVERLAP)
        return app(environ, start_response)

    return slowed


def _count(
    subjects: dict[str, Any],
    serve: Callable[[str, int], object],
    requests: int,
    close: Callable[[dict[str, Any]], None],
) -> Counts:
    """What ``harness.run_inprocess`` does around ``count_hops``, without the timing."""
    results = {name: SubjectResult(values=[], median=0.0) for name in subjects}
    try:
        count_hops(list(subjects), results, serve, requests)
    finally:
        close(subjects)
    for name, result in results.items():
        assert result.hops is not None, f"{name}: {result.extra.get('failed')}"
    return {name: result.hops for name, result in results.items() if result.hops is not None}


def count_w2a(loop: asyncio.AbstractEventLoop, case_id: str, backend: str) -> Counts:
    """WSGI to ASGI: on asyncio, batches on ``loop``; on trio, on one ``trio.run`` for
    the whole count (the benchmark's ``TrioLoop``), as a server's one loop: bridge's
    worker threads belong to the run, so a run per batch would count their start."""
    case = CASES[case_id]
    scenario = _W2A[case.scenario]
    baseline = w2a.TrioBaseline(scenario.app) if backend == "trio" else w2a.Baseline(scenario.app)
    # scenarios_w2a.make_subjects, without its a2wsgi and asgiref subjects
    subjects: dict[str, Any] = {"bridge": WsgiToAsgi(scenario.app, **case.options), "baseline": baseline}
    trio_loop = w2a.TrioLoop() if backend == "trio" else None

    def batch(subject: Any, n: int, at_once: bool) -> None:
        if trio_loop is not None:
            trio_loop.batch(subject, scenario, n, at_once=at_once)
        else:
            w2a.run_batch(loop, subject, scenario, n, at_once=at_once)

    for subject in subjects.values():
        # Both keep the WSGI app in ``app`` and read it per request (bridge documents it
        # as replaceable).
        subject.app = _slowed(scenario.app)
        batch(subject, WARM_AT_ONCE, True)
        subject.app = scenario.app
        batch(subject, WARM_SEQUENTIAL, False)

    def serve(name: str, n: int) -> None:
        batch(subjects[name], n, False)

    try:
        return _count(subjects, serve, scenario.count_requests, w2a.close_subjects)
    finally:
        if trio_loop is not None:
            trio_loop.close()


def count_a2w(driver: a2w.Driver, case_id: str, backend: str) -> Counts:
    case = CASES[case_id]
    scenario = _A2W[case.scenario]
    baseline = a2w.TrioBaseline(scenario.app) if backend == "trio" else a2w.Baseline(scenario.app)
    # scenarios_a2w.make_subjects, without its a2wsgi subject; one loop thread each,
    # no pool to grow
    subjects: dict[str, Any] = {
        "bridge": AsgiToWsgi(
            scenario.app, backend="trio" if backend == "trio" else "asyncio", **case.options
        ),
        "baseline": baseline,
    }
    for subject in subjects.values():
        driver.batch(subject, scenario, WARM_SEQUENTIAL)

    def serve(name: str, n: int) -> None:
        driver.batch(subjects[name], scenario, n)

    return _count(subjects, serve, scenario.count_requests, a2w.close_subjects)


def _figure(hops: dict[str, Any]) -> str:
    n = hops["requests"]
    return (
        f"{hops['total']} over {n} requests = {hops['to_thread']} to the thread + {hops['to_loop']} to the "
        f"loop ({hops['per_request']:g} per request: {hops['to_thread'] / n:g} + {hops['to_loop'] / n:g})"
    )


def check_exact(label: str, name: str, hops: dict[str, Any], per_request: tuple[int, int]) -> None:
    n = hops["requests"]
    to_thread, to_loop = per_request
    expected = {"total": (to_thread + to_loop) * n, "to_thread": to_thread * n, "to_loop": to_loop * n}
    got = {key: hops[key] for key in expected}
    assert got == expected, (
        f"{label}, {name}: {_figure(hops)}; pinned {to_thread + to_loop} ({to_thread} + {to_loop}) "
        "per request. "
        + (
            "The no-adapter baseline must count exactly 2: the hop counter itself is off."
            if name == "baseline"
            else "If the change is deliberate, update PINS (see this module's docstring)."
        )
    )


def check_range(
    label: str, hops: dict[str, Any], to_thread: tuple[int, int], to_loop: tuple[int, int]
) -> None:
    """Per request: ``to_thread`` and ``to_loop`` are (lowest, highest), inclusive."""
    n = hops["requests"]
    assert (
        to_thread[0] * n <= hops["to_thread"] <= to_thread[1] * n
        and to_loop[0] * n <= hops["to_loop"] <= to_loop[1] * n
    ), (
        f"{label}, bridge: {_figure(hops)}; pinned {_bounds(to_thread)} to the thread and "
        f"{_bounds(to_loop)} to the loop per request. If the change is deliberate, update the "
        "bounds (see this module's docstring)."
    )


def _bounds(bounds: tuple[int, int]) -> str:
    low, high = bounds
    return f"exactly {low}" if low == high else f"{low} to {high}"


def _exact_cases(direction: str) -> list[Any]:
    return [
        pytest.param(case_id, backend, id=f"{case_id}-{backend}")
        for case_id, backend in PINS
        if case_id.startswith(direction)
    ]


@pytest.mark.parametrize(("case_id", "backend"), _exact_cases("w2a."))
def test_w2a_wake_ups_are_exact(loop: asyncio.AbstractEventLoop, case_id: str, backend: str) -> None:
    _require(backend)
    counts = count_w2a(loop, case_id, backend)
    label = f"{case_id} on {backend}"
    check_exact(label, "baseline", counts["baseline"], BASELINE)
    check_exact(label, "bridge", counts["bridge"], PINS[case_id, backend])


@pytest.mark.parametrize(
    ("case_id", "backend"), [pytest.param(*key, id=f"{key[0]}-{key[1]}") for key in A2W_BOUNDS]
)
def test_a2w_wake_ups(driver: a2w.Driver, case_id: str, backend: str) -> None:
    """The app's task hands its events (the status with the first body, the body
    messages, its requests to read ``wsgi.input``) to the WSGI thread through one
    ``Handoff``, which wakes the thread only when it waits: a thread that comes back
    and finds the events there pays nothing. So the count to the thread has a ceiling,
    not a value.

    To the loop: exactly 1 for hello and the preloaded echo (the task's start); for the
    streamed upload 5 (the start, and the answer to each of the four 256 KiB reads the
    loop asks the WSGI thread for); for the streamed response, the start and a wake-up
    each time the app had filled the 256 KiB budget and waited for room: measured 4.0
    every run, pinned at 1 to 8. To the thread: hello and the preloaded echo at most 1
    (the status with the body, when the thread already waits for them; measured 1.0,
    0.1 once), one more on trio, always: the portal's ``start_task_soon`` waits for the
    loop's acknowledgement (measured 1.0 to 1.1: the .1 is a wait for the task's end,
    when it had not ended as the response was handed over); the streamed upload at most
    4 (the four reads, each only when the thread is back waiting before the loop asks)
    and 1 for the response (measured 4.9 to 5.0, 1.4 once; trio 5.0 to 5.2);
    the streamed response at most one per wait for events (measured 4.0 on asyncio, 0.9
    once under CPU load, 3.2 to 4.2 on trio), pinned at 0 to 8 (9 on trio): a ceiling. Before this hand-off
    the WSGI thread took every event from a ``SimpleQueue``: 17 to the thread for the
    streamed response, exactly, on asyncio and 18 on trio, and one more than now for
    each of the others. One more crossing per chunk breaks the ceilings."""
    _require(backend)
    counts = count_a2w(driver, case_id, backend)
    label = f"{case_id} on {backend}"
    check_exact(label, "baseline", counts["baseline"], BASELINE)
    to_thread, to_loop = A2W_BOUNDS[case_id, backend]
    check_range(label, counts["bridge"], to_thread, to_loop)


@pytest.mark.parametrize("backend", BACKENDS)
def test_w2a_streamed_response_wakes_at_most_once_per_wait(
    loop: asyncio.AbstractEventLoop, backend: str
) -> None:
    """1 MiB out in 16 chunks of 64 KiB through a 512 KiB hand-off. To the thread: the
    job (1, always) and the loop's notify of a worker that waits on the hand-off,
    counted only when it did wait: for the loop to take the first chunks (nearly always)
    and for room (at most once: after the loop drains the queue, the 7 chunks at most
    that remain fit). So between 1 and 3 per request by design; measured 2.8 to 3.0 on
    both backends (28 to 30 over 10 requests, 30 under CPU load, 2.7 once). To the
    loop: the worker's ``ready`` (1), and a wake-up each time the loop had sent all it
    was given and waited for the next chunk: at most one per chunk by design; measured
    1.2 to 3.0 per request on asyncio, 1.9 on trio, pinned at 1 to 5. (On trio, before
    ``TrioWorkers``, one more, always: the job's end, which anyio's ``to_thread``
    reported to the loop even after ``ready``: 2.0 to 4.0.) One more unconditional
    crossing per chunk breaks either ceiling."""
    _require(backend)
    case_id = "w2a.out-1mib"
    counts = count_w2a(loop, case_id, backend)
    label = f"{case_id} on {backend}"
    check_exact(label, "baseline", counts["baseline"], BASELINE)
    check_range(label, counts["bridge"], (2, 3), (1, 5))


@pytest.mark.parametrize("backend", BACKENDS)
def test_w2a_streamed_upload_wakes_at_most_once_per_burst(
    loop: asyncio.AbstractEventLoop, backend: str
) -> None:
    """The 1 MiB echo with ``preload_body=0``: the body comes in 16 messages of 64 KiB
    and reaches ``wsgi.input`` through a 256 KiB hand-off, filled by a receiver task
    that the worker's first read starts. Fixed: the job there and its result back (1 +
    1), and the worker's call into the loop that starts the receiver (1 there, its
    result 1 back). The synthetic server's ``receive()`` never suspends, so the loop
    puts chunks in bursts of 4 (256 KiB) and then waits for room: to the loop, a
    wake-up per burst but the last (at most 3); to the thread, the notify of a worker
    that found the hand-off empty, at most once per burst: at most 4 (usually 3: the
    first burst tends to come while the worker still waits for its call into the loop).
    So 2 to 5 to the loop and 2 to 6 to the thread by design. Measured: to the loop
    exactly 5 per request, every run, on both backends; to the thread 4.4 to 5.0 on
    asyncio, 5.0 to 5.5 on trio (whose call into the loop now answers sooner). One more
    crossing per chunk breaks either ceiling."""
    _require(backend)
    case_id = "w2a.echo-1mib-streamed"
    counts = count_w2a(loop, case_id, backend)
    label = f"{case_id} on {backend}"
    check_exact(label, "baseline", counts["baseline"], BASELINE)
    check_range(label, counts["bridge"], (2, 6), (2, 5))
