"""bridge.workers on its own: the Workers interface as the adapter uses it on each loop
(AsyncioWorkers on asyncio, TrioWorkers on trio), DaemonPool, and is_cancellation.

Real loops, real threads; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Iterator

import anyio
import pytest
import trio

from bridge.workers import AsyncioWorkers, DaemonPool, Ready, TrioWorkers, Workers, is_cancellation
from tests.thread_leaks import DEADLINE, no_thread_leaks  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.anyio


def make_workers(max_threads: int) -> Workers:
    """What WsgiToAsgi picks on the running loop. The asyncio pool's threads check for
    the loop's end every 20 ms rather than every second, so that the leak check after
    each test is quick; test_asyncio_threads_leave_when_their_loop_is_closed keeps the
    default."""
    if anyio.get_cancelled_exc_class() is asyncio.CancelledError:
        workers = AsyncioWorkers(max_threads)
        workers.pool = DaemonPool(max_threads, ended=workers.loop.is_closed, poll=0.02)
        return workers
    return TrioWorkers(max_threads)


def wait_until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + DEADLINE
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    return condition()


async def in_thread(func: Callable[[], object]) -> object:
    return await anyio.to_thread.run_sync(func)


class Boom(Exception):
    pass


# -- run --------------------------------------------------------------------------------------


async def test_run_returns_the_result_from_a_worker_thread() -> None:
    workers = make_workers(2)
    loop_thread = threading.current_thread()
    seen: list[threading.Thread] = []

    def job() -> int:
        seen.append(threading.current_thread())
        return 42

    with anyio.fail_after(DEADLINE):
        assert await workers.run(job) == 42
    (thread,) = seen
    assert thread is not loop_thread
    if isinstance(workers, AsyncioWorkers):
        assert thread.name == "bridge-wsgi-worker"
        assert thread.daemon


async def test_run_raises_the_functions_error() -> None:
    workers = make_workers(2)

    def job() -> None:
        raise Boom("from the worker")

    with anyio.fail_after(DEADLINE), pytest.raises(Boom, match="from the worker"):
        await workers.run(job)


async def test_run_never_uses_more_threads_than_max_threads() -> None:
    workers = make_workers(2)
    running = 0
    most = 0
    guard = threading.Lock()
    both_in = threading.Barrier(2, timeout=DEADLINE)

    def job() -> None:
        nonlocal running, most
        with guard:
            running += 1
            most = max(most, running)
        both_in.wait()  # two run at once (else the barrier times out)
        with guard:
            running -= 1

    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(workers.run, job)
    assert most == 2


# -- run_until_ready --------------------------------------------------------------------------


async def test_run_until_ready_returns_the_first_ready_value_while_func_goes_on() -> None:
    workers = make_workers(2)
    go = threading.Event()
    finished = threading.Event()

    def job(ready: Ready[str]) -> str:
        ready("early")
        ready("ignored")  # only the first value counts
        assert go.wait(DEADLINE)
        finished.set()
        return "late"

    with anyio.fail_after(DEADLINE):
        assert await workers.run_until_ready(job) == "early"
    assert not finished.is_set()  # func still waits in its thread
    go.set()
    assert finished.wait(DEADLINE)


async def test_run_until_ready_returns_what_func_returns_if_it_never_calls_ready() -> None:
    workers = make_workers(2)
    with anyio.fail_after(DEADLINE):
        assert await workers.run_until_ready(lambda ready: "returned") == "returned"


async def test_run_until_ready_raises_an_error_from_before_ready() -> None:
    workers = make_workers(2)

    def job(ready: Ready[str]) -> str:
        raise Boom("before ready")

    with anyio.fail_after(DEADLINE), pytest.raises(Boom, match="before ready"):
        await workers.run_until_ready(job)


class Recorded(logging.Handler):
    """Sets an event when a record carrying an error arrives (from any thread)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.errors: list[BaseException] = []
        self.arrived = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.errors.append(record.exc_info[1])
            self.arrived.set()


@pytest.fixture
def worker_log() -> Iterator[Recorded]:
    handler = Recorded()
    logger = logging.getLogger("bridge.workers")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_an_error_after_ready_is_logged_not_raised_to_the_caller(worker_log: Recorded) -> None:
    workers = make_workers(2)
    go = threading.Event()

    def job(ready: Ready[str]) -> str:
        ready("streaming")
        assert go.wait(DEADLINE)
        raise Boom("after ready")

    with anyio.fail_after(DEADLINE):
        assert await workers.run_until_ready(job) == "streaming"
    go.set()
    assert worker_log.arrived.wait(DEADLINE), "the late error was not logged"
    assert [str(e) for e in worker_log.errors] == ["after ready"]


async def test_cancelled_while_waiting_for_a_thread_it_never_runs() -> None:
    workers = make_workers(1)
    release = threading.Event()
    ran = threading.Event()

    def hold_the_thread(ready: Ready[None]) -> None:
        ready(None)
        assert release.wait(DEADLINE)

    def never(ready: Ready[None]) -> None:
        ran.set()

    with anyio.fail_after(DEADLINE):
        await workers.run_until_ready(hold_the_thread)  # the only thread is now busy
        # No thread can take it before release: the cancellation comes first, surely.
        with anyio.move_on_after(0.05) as scope:
            await workers.run_until_ready(never)
        assert scope.cancelled_caught
        release.set()
        # Calls run in order: once this one has run, the cancelled one had its turn.
        assert await workers.run_until_ready(lambda ready: "after") == "after"
    assert not ran.is_set()


async def test_once_a_thread_has_it_it_runs_on_after_cancellation() -> None:
    workers = make_workers(1)
    started = threading.Event()
    go = threading.Event()
    finished = threading.Event()

    def job(ready: Ready[None]) -> None:
        started.set()
        assert go.wait(DEADLINE)
        finished.set()

    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            tg.start_soon(workers.run_until_ready, job)
            assert await in_thread(lambda: started.wait(DEADLINE))
            tg.cancel_scope.cancel()
    go.set()
    assert finished.wait(DEADLINE), "the running call was stopped"


# -- from a worker back to the loop -------------------------------------------------------------


async def test_wait_loop_runs_a_coroutine_on_the_loop_from_a_worker() -> None:
    workers = make_workers(2)
    loop_thread = threading.get_ident()
    on: list[int] = []

    async def double(x: int) -> int:
        on.append(threading.get_ident())
        await anyio.sleep(0)
        return x * 2

    with anyio.fail_after(DEADLINE):
        assert await workers.run(lambda: workers.wait_loop(double, 21)) == 42
    assert on == [loop_thread]


async def test_wait_loop_raises_the_coroutines_error_in_the_worker() -> None:
    workers = make_workers(2)

    async def fail() -> None:
        raise Boom("on the loop")

    def job() -> str:
        try:
            workers.wait_loop(fail)
        except Boom as exc:
            return f"caught {exc}"
        return "not raised"

    with anyio.fail_after(DEADLINE):
        assert await workers.run(job) == "caught on the loop"


async def test_call_loop_gives_a_future_on_both_backends() -> None:
    """A future the request can cancel when it lets go (``_Link.abandon``)."""
    workers = make_workers(2)

    async def answer(x: int) -> int:
        return x + 1

    def job() -> object:
        future = workers.call_loop(answer, 41)
        assert future is not None
        return future.result(DEADLINE)

    with anyio.fail_after(DEADLINE):
        outcome = await workers.run(job)
    assert outcome == 42


async def test_a_cancelled_call_loop_future_cancels_the_call() -> None:
    workers = make_workers(2)
    entered, cancelled = anyio.Event(), anyio.Event()

    async def forever() -> None:
        entered.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    futures: list[Any] = []

    def job() -> None:
        futures.append(workers.call_loop(forever))

    with anyio.fail_after(DEADLINE):
        await workers.run(job)
        await entered.wait()
        futures[0].cancel()  # on the loop, as _Link.abandon does
        await cancelled.wait()


async def test_cancelled_says_false_while_the_loop_runs() -> None:
    """The request's own cancellation is the adapter's flags' business, on both
    backends; a worker is told only that the loop itself is gone."""
    workers = make_workers(1)
    seen: list[bool] = []

    def job() -> None:
        seen.append(workers.cancelled())

    with anyio.fail_after(DEADLINE):
        await workers.run(job)
    assert seen == [False]


# -- spawn, checkpoint, loop_ref --------------------------------------------------------------


async def test_spawn_runs_a_task_of_its_own_that_the_returned_function_cancels() -> None:
    workers = make_workers(1)
    started = anyio.Event()
    cleaned_up = anyio.Event()

    async def forever() -> None:
        try:
            started.set()
            await anyio.sleep_forever()
        finally:
            cleaned_up.set()

    with anyio.fail_after(DEADLINE):
        cancel = workers.spawn(forever)
        await started.wait()  # it runs without anyone awaiting it
        cancel()
        await cleaned_up.wait()


async def test_checkpoint_lets_other_tasks_run() -> None:
    workers = make_workers(1)
    ran = anyio.Event()

    async def mark() -> None:
        ran.set()

    workers.spawn(mark)
    for _ in range(20):  # bounded: a scheduler may take a few rounds
        await workers.checkpoint()
        if ran.is_set():
            break
    assert ran.is_set()


async def test_loop_ref_is_made_on_the_loop() -> None:
    workers = make_workers(1)
    assert workers.loop_ref.thread == threading.get_ident()
    event = workers.loop_ref.new_event()
    assert await workers.run(lambda: workers.loop_ref.wake(event)) is True
    with anyio.fail_after(DEADLINE):
        await event.wait()


# -- threads leave with their loop ------------------------------------------------------------


def test_asyncio_threads_leave_when_their_loop_is_closed() -> None:
    """AsyncioWorkers as the adapter makes it (default pool): after asyncio.run() its
    threads are gone within about a second, without waiting for the idle timeout."""
    before = {t for t in threading.enumerate() if t.name == "bridge-wsgi-worker"}

    async def main() -> None:
        workers = AsyncioWorkers(4)
        both_in = threading.Barrier(4, timeout=DEADLINE)
        await asyncio.gather(*(workers.run(both_in.wait) for _ in range(4)))
        assert workers.pool.threads == 4

    asyncio.run(main())
    assert wait_until(
        lambda: not {t for t in threading.enumerate() if t.name == "bridge-wsgi-worker"} - before
    ), "worker threads outlived their event loop"


# -- DaemonPool -------------------------------------------------------------------------------


def test_pool_threads_are_daemons_named_bridge_wsgi_worker() -> None:
    pool = DaemonPool(2, idle_exit=0.05, poll=0.01)
    thread = pool.submit(threading.current_thread).result(DEADLINE)
    assert thread.name == "bridge-wsgi-worker"
    assert thread.daemon
    assert thread is not threading.current_thread()


def test_pool_never_has_more_threads_than_its_size() -> None:
    pool = DaemonPool(3, idle_exit=0.05, poll=0.01)
    release = threading.Event()
    full = threading.Event()
    running = 0
    most = 0
    guard = threading.Lock()

    def job() -> None:
        nonlocal running, most
        with guard:
            running += 1
            most = max(most, running)
            if running == 3:
                full.set()
        assert release.wait(DEADLINE)
        with guard:
            running -= 1

    futures = [pool.submit(job) for _ in range(10)]
    assert full.wait(DEADLINE)  # three calls run at once, seven wait
    assert pool.threads == 3
    release.set()
    for future in futures:
        future.result(DEADLINE)
    assert most == 3
    assert wait_until(lambda: pool.threads == 0)


def test_one_thread_runs_calls_in_the_order_submitted() -> None:
    pool = DaemonPool(1, idle_exit=0.05, poll=0.01)
    order: list[int] = []
    futures = [pool.submit(lambda i=i: order.append(i)) for i in range(50)]  # type: ignore[misc]
    for future in futures:
        future.result(DEADLINE)
    assert order == list(range(50))


def test_submit_carries_the_result_or_the_error() -> None:
    pool = DaemonPool(1, idle_exit=0.05, poll=0.01)

    def fail() -> None:
        raise Boom("in the pool")

    assert pool.submit(lambda: "fine").result(DEADLINE) == "fine"
    with pytest.raises(Boom, match="in the pool"):
        pool.submit(fail).result(DEADLINE)


def test_start_logs_an_escaping_error_and_the_thread_serves_on(worker_log: Recorded) -> None:
    pool = DaemonPool(1, idle_exit=0.5, poll=0.01)
    threads: list[threading.Thread] = []

    def fail() -> None:
        threads.append(threading.current_thread())
        raise Boom("escaped")

    pool.start(fail)
    assert worker_log.arrived.wait(DEADLINE)
    assert [str(e) for e in worker_log.errors] == ["escaped"]
    threads.append(pool.submit(threading.current_thread).result(DEADLINE))
    assert threads[0] is threads[1], "the error cost the pool its thread"


def test_a_cancelled_future_never_runs() -> None:
    pool = DaemonPool(1, idle_exit=0.05, poll=0.01)
    release = threading.Event()
    ran = threading.Event()
    busy = pool.submit(lambda: release.wait(DEADLINE))
    queued = pool.submit(ran.set)
    assert queued.cancel()
    release.set()
    assert busy.result(DEADLINE)
    assert pool.submit(lambda: "next").result(DEADLINE) == "next"
    assert queued.cancelled()
    assert not ran.is_set()


def test_threads_leave_once_ended_says_the_owner_is_gone() -> None:
    gone = threading.Event()
    pool = DaemonPool(2, ended=gone.is_set, idle_exit=60.0, poll=0.01)
    both_in = threading.Barrier(2, timeout=DEADLINE)
    for future in [pool.submit(both_in.wait) for _ in range(2)]:
        future.result(DEADLINE)
    threads = {t for t in threading.enumerate() if t.name == "bridge-wsgi-worker"}
    assert pool.threads == 2
    assert not wait_for_timeout(lambda: pool.threads == 0, 0.1)  # 60 s idle_exit: they stay
    gone.set()
    assert wait_until(lambda: pool.threads == 0)
    for thread in threads:
        thread.join(DEADLINE)


def wait_for_timeout(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    return condition()


def test_idle_threads_leave_and_the_pool_serves_again() -> None:
    pool = DaemonPool(2, idle_exit=0.05, poll=0.01)
    assert pool.submit(lambda: 1).result(DEADLINE) == 1
    assert wait_until(lambda: pool.threads == 0)
    assert pool.submit(lambda: 2).result(DEADLINE) == 2


def test_a_stuck_call_does_not_hold_up_interpreter_exit() -> None:
    script = (
        "import threading\n"
        "from bridge.workers import DaemonPool\n"
        "pool = DaemonPool(1)\n"
        "started = threading.Event()\n"
        "pool.start(lambda: (started.set(), threading.Event().wait()))\n"
        "assert started.wait(5)\n"
        "print('exiting')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=20, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "exiting"


# -- is_cancellation --------------------------------------------------------------------------


async def caught_cancellation() -> BaseException:
    """A real cancellation exception of the running loop."""
    caught: list[BaseException] = []
    with anyio.CancelScope() as scope:
        scope.cancel()
        try:
            await anyio.sleep(1)
        except BaseException as exc:
            caught.append(exc)
            raise
    return caught[0]


async def test_is_cancellation_recognises_the_running_loops_cancellation() -> None:
    exc = await caught_cancellation()
    assert isinstance(exc, (asyncio.CancelledError, trio.Cancelled))
    assert is_cancellation(exc, anyio.get_cancelled_exc_class())
    assert make_workers(1).is_cancellation(exc)  # the loop's class, known to its workers


@pytest.mark.parametrize(
    "exc",
    [asyncio.CancelledError(), concurrent.futures.CancelledError()],
    ids=["asyncio", "concurrent.futures"],
)
def test_is_cancellation_recognises_future_cancellations(exc: BaseException) -> None:
    assert is_cancellation(exc)


@pytest.mark.parametrize(
    "exc",
    [Boom("Cancelled"), KeyboardInterrupt(), SystemExit(0), TimeoutError(), RuntimeError("cancelled")],
    ids=lambda exc: type(exc).__name__,
)
def test_is_cancellation_rejects_other_errors(exc: BaseException) -> None:
    assert not is_cancellation(exc)


def test_a_cancelled_futures_result_is_a_cancellation() -> None:
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    future.cancel()
    with pytest.raises(BaseException) as info:
        future.result(0)
    assert is_cancellation(info.value)


async def test_results_ready_together_share_one_wake_up_of_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under load, workers finish while the loop is busy: their results reach it in one
    callback (one self-pipe write), not one each; each waiter still gets its own."""
    if anyio.get_cancelled_exc_class() is not asyncio.CancelledError:
        pytest.skip("counts asyncio's call_soon_threadsafe (test_handoff holds LoopRef.call_soon on both)")
    workers = make_workers(3)
    assert isinstance(workers, AsyncioWorkers)
    loop = workers.loop
    wake_ups: list[object] = []
    original = loop.call_soon_threadsafe

    def counted(callback: Any, *args: Any, **kwargs: Any) -> Any:
        wake_ups.append(callback)
        return original(callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counted)
    go = threading.Event()

    def job(n: int) -> Callable[[Ready[int]], int]:
        def run(ready: Ready[int]) -> int:
            assert go.wait(DEADLINE)
            return n

        return run

    with anyio.fail_after(DEADLINE):
        tasks = [asyncio.ensure_future(workers.run_until_ready(job(n))) for n in range(3)]
        await asyncio.sleep(0)  # every job queued for a thread
        go.set()
        # The loop busy (blocked here) while all three finish.
        assert wait_until(lambda: len(workers.loop_ref._calls) == 3), "the jobs did not finish"
        assert await asyncio.gather(*tasks) == [0, 1, 2]
    assert len(wake_ups) == 1
