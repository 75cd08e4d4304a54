"""bridge.handoff on its own: the byte budget, ordering, closing, the ways out of a
blocking wait, and the promise that makes it fast: a side is woken only when it waits.

Real loops (asyncio and trio), real threads; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import threading
import time
from typing import Any, Callable, TypeVar

import anyio
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bridge.handoff
from bridge.handoff import Closed, Handoff, LoopRef
from tests.thread_leaks import DEADLINE, no_thread_leaks  # noqa: F401 - autouse fixture

T = TypeVar("T")


pytestmark = pytest.mark.anyio


@pytest.fixture
def slow_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocking waits poll only every 30 s: a wait that ends within the test's deadline
    was woken, not timed out."""
    monkeypatch.setattr(bridge.handoff, "_THREAD_POLL", 30.0)


class Wakes:
    """Counts LoopRef.wake calls (wrapped on the class, as benchmarks/hops.py does)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = LoopRef.wake

        def wake(ref: LoopRef, event: Any) -> bool:
            self.count += 1
            return original(ref, event)

        monkeypatch.setattr(LoopRef, "wake", wake)


class Worker:
    """A plain thread running one blocking call; its outcome is kept for the test."""

    def __init__(self, func: Callable[[], object]) -> None:
        self.result: object = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._func = func
        self.thread = threading.Thread(target=self._run, name="test-handoff-worker")
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self._func()
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()

    def join(self) -> None:
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive(), "the worker thread is stuck"


async def in_thread(func: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(func)


# -- ordering, and a get takes everything -------------------------------------------------------


async def test_thread_to_loop_items_arrive_in_order_all_in_one_get() -> None:
    handoff: Handoff[str] = Handoff(100)

    def produce() -> None:
        for word in ["a", "b", "c", "d", "e"]:
            handoff.put_in_thread(word, 1)

    await in_thread(produce)
    assert await handoff.get_in_loop() == ["a", "b", "c", "d", "e"]


async def test_loop_to_thread_items_arrive_in_order_all_in_one_get() -> None:
    handoff: Handoff[int] = Handoff(100)
    for i in range(5):
        await handoff.put_in_loop(i, 3)
    assert await in_thread(handoff.get_in_thread) == [0, 1, 2, 3, 4]


async def test_a_waiting_loop_consumer_gets_what_a_thread_puts_later() -> None:
    handoff: Handoff[str] = Handoff(100)
    got: list[list[str]] = []

    async def consume() -> None:
        got.append(await handoff.get_in_loop())

    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await anyio.wait_all_tasks_blocked()
            await in_thread(lambda: handoff.put_in_thread("late", 4))
    assert got == [["late"]]


async def test_a_cancelled_loop_get_loses_nothing() -> None:
    handoff: Handoff[str] = Handoff(100)
    with anyio.move_on_after(0.01) as scope:
        await handoff.get_in_loop()
    assert scope.cancelled_caught
    await in_thread(lambda: handoff.put_in_thread("after", 5))
    with anyio.fail_after(DEADLINE):
        assert await handoff.get_in_loop() == ["after"]


# -- the byte budget ------------------------------------------------------------------------


async def test_a_thread_producer_blocks_while_over_budget_until_the_loop_takes(slow_poll: None) -> None:
    handoff: Handoff[str] = Handoff(10)
    await in_thread(lambda: handoff.put_in_thread("first", 6))
    second = Worker(lambda: handoff.put_in_thread("second", 6))
    assert not second.done.wait(0.1), "6 + 6 bytes went past a 10-byte budget"
    assert await handoff.get_in_loop() == ["first"]
    assert second.done.wait(DEADLINE), "taking the queue did not wake the producer"
    second.join()
    assert second.error is None
    assert await handoff.get_in_loop() == ["second"]


async def test_a_loop_producer_waits_while_over_budget_until_the_thread_takes() -> None:
    handoff: Handoff[str] = Handoff(10)
    await handoff.put_in_loop("first", 6)
    put_done = anyio.Event()

    async def put_second() -> None:
        await handoff.put_in_loop("second", 6)
        put_done.set()

    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            tg.start_soon(put_second)
            await anyio.wait_all_tasks_blocked()
            assert not put_done.is_set(), "6 + 6 bytes went past a 10-byte budget"
            assert await in_thread(handoff.get_in_thread) == ["first"]
            await put_done.wait()
    assert await in_thread(handoff.get_in_thread) == ["second"]


async def test_items_that_fit_the_budget_together_do_not_wait() -> None:
    handoff: Handoff[int] = Handoff(10)
    with anyio.fail_after(DEADLINE):
        for i in range(5):
            await handoff.put_in_loop(i, 2)  # exactly 10 bytes
    assert await in_thread(handoff.get_in_thread) == [0, 1, 2, 3, 4]


async def test_an_item_larger_than_the_budget_passes_alone(slow_poll: None) -> None:
    handoff: Handoff[str] = Handoff(10)
    await in_thread(lambda: handoff.put_in_thread("huge", 25))  # an empty queue takes it
    small = Worker(lambda: handoff.put_in_thread("small", 1))
    assert not small.done.wait(0.1), "an item joined an oversized one"
    assert await handoff.get_in_loop() == ["huge"]
    assert small.done.wait(DEADLINE)
    small.join()
    assert await handoff.get_in_loop() == ["small"]


async def test_an_oversized_item_from_the_loop_passes_alone() -> None:
    handoff: Handoff[str] = Handoff(10)
    with anyio.fail_after(DEADLINE):
        await handoff.put_in_loop("huge", 25)
    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            tg.start_soon(handoff.put_in_loop, "small", 1)
            await anyio.wait_all_tasks_blocked()
            assert await in_thread(handoff.get_in_thread) == ["huge"]
    assert await in_thread(handoff.get_in_thread) == ["small"]


async def test_set_limit_lets_a_waiting_thread_producer_in_at_once(slow_poll: None) -> None:
    handoff: Handoff[str] = Handoff(10)
    await in_thread(lambda: handoff.put_in_thread("first", 6))
    second = Worker(lambda: handoff.put_in_thread("second", 6))
    assert not second.done.wait(0.1)
    handoff.set_limit(20)
    assert second.done.wait(DEADLINE), "set_limit did not wake the waiting producer"
    second.join()
    assert handoff.limit == 20
    assert await handoff.get_in_loop() == ["first", "second"]


async def test_set_limit_from_a_thread_lets_a_waiting_loop_producer_in() -> None:
    handoff: Handoff[str] = Handoff(10)
    await handoff.put_in_loop("first", 6)
    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            tg.start_soon(handoff.put_in_loop, "second", 6)
            await anyio.wait_all_tasks_blocked()
            await in_thread(lambda: handoff.set_limit(20))
    assert await in_thread(handoff.get_in_thread) == ["first", "second"]


# -- closing --------------------------------------------------------------------------------


@pytest.mark.parametrize("closer", ["thread", "loop task"])
async def test_close_wakes_a_waiting_loop_consumer(closer: str) -> None:
    handoff: Handoff[str] = Handoff(10)
    outcome: list[str] = []

    async def consume() -> None:
        try:
            await handoff.get_in_loop()
        except Closed:
            outcome.append("closed")

    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await anyio.wait_all_tasks_blocked()
            if closer == "thread":
                await in_thread(handoff.close)
            else:
                handoff.close()
    assert outcome == ["closed"]
    assert handoff.closed


async def test_close_wakes_a_waiting_thread_consumer(slow_poll: None) -> None:
    handoff: Handoff[str] = Handoff(10)
    consumer = Worker(handoff.get_in_thread)
    assert not consumer.done.wait(0.1)
    handoff.close()
    assert consumer.done.wait(DEADLINE), "close did not wake the consumer"
    consumer.join()
    assert isinstance(consumer.error, Closed)


async def test_close_wakes_waiting_producers_on_both_sides(slow_poll: None) -> None:
    handoff: Handoff[str] = Handoff(10)
    await handoff.put_in_loop("first", 10)
    thread_producer = Worker(lambda: handoff.put_in_thread("t", 5))
    loop_outcome: list[BaseException] = []

    async def loop_producer() -> None:
        try:
            await handoff.put_in_loop("l", 5)
        except Closed as exc:
            loop_outcome.append(exc)

    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            tg.start_soon(loop_producer)
            await anyio.wait_all_tasks_blocked()
            assert not thread_producer.done.wait(0.1)
            await in_thread(handoff.close)
    assert thread_producer.done.wait(DEADLINE)
    thread_producer.join()
    assert isinstance(thread_producer.error, Closed)
    assert len(loop_outcome) == 1


async def test_after_close_what_was_queued_is_still_delivered_then_closed() -> None:
    handoff: Handoff[str] = Handoff(100)
    await in_thread(lambda: handoff.put_in_thread("kept", 4))
    handoff.close()
    assert await handoff.get_in_loop() == ["kept"]
    with pytest.raises(Closed):
        await handoff.get_in_loop()

    other: Handoff[str] = Handoff(100)
    await other.put_in_loop("kept", 4)
    other.close()
    assert await in_thread(other.get_in_thread) == ["kept"]
    with pytest.raises(Closed):
        await in_thread(other.get_in_thread)


async def test_puts_after_close_raise_closed_on_both_sides() -> None:
    handoff: Handoff[str] = Handoff(100)
    handoff.close()
    with pytest.raises(Closed):
        await handoff.put_in_loop("x", 1)
    with pytest.raises(Closed):
        await in_thread(lambda: handoff.put_in_thread("x", 1))


# -- ways out of a blocking thread-side wait ----------------------------------------------------


class StopAfter:
    """should_stop(): True from its n-th call on; counts the calls."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls >= self.n


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_should_stop_ends_a_thread_consumers_wait_and_false_keeps_it_waiting() -> None:
    handoff: Handoff[str] = Handoff(10)
    stop = StopAfter(2)
    with anyio.fail_after(DEADLINE), pytest.raises(Closed, match="stopped"):
        await in_thread(lambda: handoff.get_in_thread(should_stop=stop))
    assert stop.calls == 2  # asked every poll; the first False kept it waiting


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_should_stop_ends_a_thread_producers_wait_for_room() -> None:
    handoff: Handoff[str] = Handoff(10)
    handoff.put_in_thread("first", 10)
    with anyio.fail_after(DEADLINE), pytest.raises(Closed, match="stopped"):
        await in_thread(lambda: handoff.put_in_thread("second", 1, should_stop=StopAfter(1)))
    assert await handoff.get_in_loop() == ["first"]  # the refused item was not queued


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_should_stop_ends_wait_taken_in_thread() -> None:
    handoff: Handoff[str] = Handoff(10)
    handoff.put_in_thread("never taken", 1)
    with anyio.fail_after(DEADLINE), pytest.raises(Closed, match="stopped"):
        await in_thread(lambda: handoff.wait_taken_in_thread(should_stop=StopAfter(1)))


# -- wait_taken_in_thread -------------------------------------------------------------------


async def test_wait_taken_in_thread_returns_once_the_loop_took_everything(slow_poll: None) -> None:
    handoff: Handoff[str] = Handoff(100)
    order: list[str] = []

    def produce() -> None:
        handoff.put_in_thread("a", 1)
        handoff.put_in_thread("b", 1)
        handoff.wait_taken_in_thread()
        order.append("taken")

    producer = Worker(produce)
    assert not producer.done.wait(0.1), "returned while items were still queued"
    order.append("get")
    got = await handoff.get_in_loop()
    assert producer.done.wait(DEADLINE), "taking the queue did not wake wait_taken_in_thread"
    producer.join()
    assert producer.error is None
    assert got == ["a", "b"]
    assert order == ["get", "taken"]


async def test_wait_taken_in_thread_returns_at_once_when_empty_or_closed(slow_poll: None) -> None:
    handoff: Handoff[str] = Handoff(100)
    with anyio.fail_after(DEADLINE):
        await in_thread(handoff.wait_taken_in_thread)
    await handoff.put_in_loop("x", 1)
    waiter = Worker(handoff.wait_taken_in_thread)
    assert not waiter.done.wait(0.1)
    handoff.close()
    assert waiter.done.wait(DEADLINE), "close did not wake wait_taken_in_thread"
    waiter.join()
    assert waiter.error is None


# -- the loop has ended ---------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_put_in_thread_after_the_loop_has_ended_raises_closed(backend: str) -> None:
    """The loop's consumer was waiting when its loop ended (cancelled with it): the
    next put finds nobody to wake, closes the hand-off and says so."""
    handoffs: list[Handoff[str]] = []

    async def main() -> None:
        handoff: Handoff[str] = Handoff(100)
        handoffs.append(handoff)
        async with anyio.create_task_group() as tg:
            tg.start_soon(handoff.get_in_loop)
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()

    anyio.run(main, backend=backend)
    (handoff,) = handoffs
    with pytest.raises(Closed, match="loop has ended"):
        handoff.put_in_thread("orphan", 1)
    assert handoff.closed
    with pytest.raises(Closed):
        handoff.put_in_thread("again", 1)


# -- a hand-off made off the loop -----------------------------------------------------------


async def test_a_handoff_made_in_a_worker_with_the_loops_ref_wakes_the_loop() -> None:
    ref = LoopRef()
    assert ref.thread == threading.get_ident()
    made: list[Handoff[str]] = []
    ready = threading.Event()
    go = threading.Event()

    def worker() -> None:
        handoff: Handoff[str] = Handoff(100, ref)
        made.append(handoff)
        ready.set()
        assert go.wait(DEADLINE)
        handoff.put_in_thread("from a worker", 1)

    producer = Worker(worker)
    got: list[list[str]] = []
    with anyio.fail_after(DEADLINE):
        assert await in_thread(lambda: ready.wait(DEADLINE))

        async def consume() -> None:
            got.append(await made[0].get_in_loop())

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await anyio.wait_all_tasks_blocked()
            go.set()
    producer.join()
    assert producer.error is None
    assert got == [["from a worker"]]


# -- a side is woken only when it waits ---------------------------------------------------------


async def test_no_wake_up_while_a_thread_producer_stays_ahead_of_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The consumer never waits (data is always there): no wake-up at all, and each get
    takes the whole batch."""
    wakes = Wakes(monkeypatch)
    calls: list[object] = []
    if isinstance(LoopRef().new_event(), asyncio.Event):
        loop = asyncio.get_running_loop()
        original = loop.call_soon_threadsafe

        def counting(callback: Callable[..., object], *args: Any, **kwargs: Any) -> asyncio.Handle:
            calls.append(getattr(callback, "__self__", None))
            return original(callback, *args, **kwargs)

        monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
    handoff: Handoff[int] = Handoff(1000)
    for round_ in range(20):
        batch = list(range(round_ * 10, round_ * 10 + 10))

        def produce(batch: list[int] = batch) -> None:
            for i in batch:
                handoff.put_in_thread(i, 7)

        await in_thread(produce)
        assert await handoff.get_in_loop() == batch
    assert wakes.count == 0
    # Any call_soon_threadsafe seen came from the thread runner, never for an event.
    assert not [c for c in calls if isinstance(c, asyncio.Event)]


async def test_one_wake_up_per_time_the_loop_consumer_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    wakes = Wakes(monkeypatch)
    handoff: Handoff[int] = Handoff(1000)
    got: list[list[int]] = []

    async def consume() -> None:
        got.append(await handoff.get_in_loop())

    with anyio.fail_after(DEADLINE):
        for i in range(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await anyio.wait_all_tasks_blocked()  # it waits: the queue is empty

                def produce(i: int = i) -> None:
                    handoff.put_in_thread(i, 1)
                    handoff.put_in_thread(i + 100, 1)  # the consumer is already woken

                # Joined on the loop's thread, which is then busy: the consumer runs
                # only after both puts, and takes both at once.
                Worker(produce).join()
    assert got == [[i, i + 100] for i in range(5)]
    assert wakes.count == 5


async def test_a_loop_producer_waiting_for_room_is_woken_once_by_a_thread_get(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wakes = Wakes(monkeypatch)
    handoff: Handoff[str] = Handoff(10)
    await handoff.put_in_loop("first", 10)
    assert await in_thread(handoff.get_in_thread) == ["first"]
    assert wakes.count == 0  # the producer was not waiting
    await handoff.put_in_loop("second", 10)
    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            tg.start_soon(handoff.put_in_loop, "third", 10)
            await anyio.wait_all_tasks_blocked()
            assert await in_thread(handoff.get_in_thread) == ["second"]
    assert wakes.count == 1
    assert await in_thread(handoff.get_in_thread) == ["third"]


# -- LoopRef --------------------------------------------------------------------------------


async def test_loop_ref_wake_from_another_thread_sets_the_event() -> None:
    ref = LoopRef()
    event = ref.new_event()
    expected = asyncio.Event if isinstance(event, asyncio.Event) else trio.Event
    assert isinstance(event, expected)
    woke = await in_thread(lambda: ref.wake(event))
    assert woke is True
    with anyio.fail_after(DEADLINE):
        await event.wait()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_loop_ref_wake_after_the_loop_ended_returns_false(backend: str) -> None:
    made: list[tuple[LoopRef, Any]] = []

    async def main() -> None:
        ref = LoopRef()
        made.append((ref, ref.new_event()))

    anyio.run(main, backend=backend)
    ((ref, event),) = made
    assert ref.wake(event) is False


def test_loop_ref_outside_any_loop_raises() -> None:
    with pytest.raises(RuntimeError):
        LoopRef()


def _calls_from_a_thread_while_the_loop_is_blocked(
    ref: LoopRef, calls: list[Callable[[], object]]
) -> list[bool]:
    """On the loop: another thread makes ``calls`` through ``ref.call_soon`` while this
    thread (the loop's) waits for it, so the loop runs none of them meanwhile."""
    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.extend(ref.call_soon(call) for call in calls))
    thread.start()
    thread.join(DEADLINE)
    assert not thread.is_alive()
    return results


async def test_loop_ref_calls_made_while_the_loop_is_busy_share_one_wake_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ref = LoopRef()
    wake_ups = []
    run_calls = LoopRef._run_calls

    def counted(self: LoopRef) -> None:
        wake_ups.append(self)
        run_calls(self)

    monkeypatch.setattr(LoopRef, "_run_calls", counted)
    ran: list[int] = []
    done = ref.new_event()
    calls: list[Callable[[], object]] = [functools.partial(ran.append, n) for n in range(3)]
    assert _calls_from_a_thread_while_the_loop_is_blocked(ref, [*calls, done.set]) == [True] * 4
    with anyio.fail_after(DEADLINE):
        await done.wait()
    assert ran == [0, 1, 2]  # in the order made
    assert len(wake_ups) == 1  # one callback on the loop for all four
    # Once run, the next call wakes the loop again.
    again = ref.new_event()
    assert await in_thread(lambda: ref.wake(again)) is True
    with anyio.fail_after(DEADLINE):
        await again.wait()
    assert len(wake_ups) == 2


async def test_loop_ref_a_call_that_raises_leaves_the_later_ones_to_run() -> None:
    if anyio.get_cancelled_exc_class() is not asyncio.CancelledError:
        pytest.skip("on trio an error in a run_sync_soon callback ends the run, by design")
    loop = asyncio.get_running_loop()
    reported: list[BaseException] = []
    loop.set_exception_handler(lambda _, context: reported.append(context["exception"]))
    ref = LoopRef()
    ran: list[str] = []
    done = ref.new_event()

    def fail() -> None:
        raise ValueError("a broken call")

    try:
        calls: list[Callable[[], object]] = [fail, functools.partial(ran.append, "after"), done.set]
        _calls_from_a_thread_while_the_loop_is_blocked(ref, calls)
        with anyio.fail_after(DEADLINE):
            await done.wait()  # not stranded behind the error until some later call
    finally:
        loop.set_exception_handler(None)
    assert ran == ["after"]
    assert [type(error) for error in reported] == [ValueError]  # reported by the loop, not lost


# -- the consumer refuses: refuse() -------------------------------------------------------------


class CountingWakeup(queue.SimpleQueue[None]):
    """A hand-off's wake-up queue (the thread side sleeps on it) that counts the
    wake-ups put in it and tells when a thread has started to wait on it."""

    def __init__(self) -> None:
        super().__init__()
        self.wakes = 0
        self.waiting = threading.Event()

    def put(self, item: None, block: bool = True, timeout: float | None = None) -> None:
        self.wakes += 1
        super().put(item, block, timeout)

    def get(self, block: bool = True, timeout: float | None = None) -> None:
        self.waiting.set()  # the hand-off's lock is released by now: a waker may come
        return super().get(block, timeout)


def counting_wakeup(handoff: Handoff[Any]) -> CountingWakeup:
    """Install a CountingWakeup in a fresh hand-off (before any thread uses it)."""
    wakeup = CountingWakeup()
    handoff._wakeup = wakeup
    return wakeup


def wait_until_waiting(handoff: Handoff[Any], wakeup: CountingWakeup) -> None:
    """Return once a thread waits in the hand-off: it said so under the lock, and
    released the lock before it started to wait on ``wakeup``."""
    assert wakeup.waiting.wait(DEADLINE), "the thread never waited"
    with handoff._lock:
        assert handoff._thread_waiting, "the thread stopped waiting on its own"


async def test_refuse_returns_what_was_queued_in_order_and_empties_it() -> None:
    handoff: Handoff[str] = Handoff(100)
    await handoff.put_in_loop("a", 5)
    handoff.push_in_loop("b", "c")
    await handoff.put_in_loop("d", 5)
    assert handoff.refuse() == ["a", "b", "c", "d"]
    assert handoff.refuse() == []  # nothing is left, and nothing more comes
    assert not handoff.closed  # refusing is not closing
    with anyio.fail_after(DEADLINE):
        assert await in_thread(lambda: handoff.get_in_thread(timeout=0.02)) == []

    other: Handoff[str] = Handoff(100)

    def produce() -> None:
        for word in ["x", "y", "z"]:
            other.put_in_thread(word, 1)

    await in_thread(produce)
    assert other.refuse() == ["x", "y", "z"]  # refused on the loop: the thread's items
    assert other.refuse() == []


async def test_puts_and_pushes_after_refuse_raise_closed_and_queue_nothing() -> None:
    handoff: Handoff[str] = Handoff(100)
    await handoff.put_in_loop("queued", 1)
    assert await in_thread(handoff.refuse) == ["queued"]
    with pytest.raises(Closed):
        await handoff.put_in_loop("x", 1)
    with pytest.raises(Closed):
        handoff.push_in_loop("y", "z")
    with pytest.raises(Closed):
        handoff.push_in_loop()
    with pytest.raises(Closed):
        await in_thread(lambda: handoff.put_in_thread("w", 1))
    assert handoff.refuse() == []


@pytest.mark.parametrize("refuser", ["thread", "loop task"])
async def test_refuse_wakes_a_loop_producer_waiting_for_room(
    monkeypatch: pytest.MonkeyPatch, refuser: str
) -> None:
    wakes = Wakes(monkeypatch)
    handoff: Handoff[str] = Handoff(10)
    await handoff.put_in_loop("first", 10)
    outcome: list[BaseException] = []
    refused: list[list[str]] = []

    async def put_second() -> None:
        try:
            await handoff.put_in_loop("second", 5)
        except Closed as exc:
            outcome.append(exc)

    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            tg.start_soon(put_second)
            await anyio.wait_all_tasks_blocked()
            assert not outcome
            if refuser == "thread":
                refused.append(await in_thread(handoff.refuse))
            else:
                refused.append(handoff.refuse())
    assert refused == [["first"]]
    assert len(outcome) == 1, "the waiting put did not raise Closed"
    # From a thread the waiting task is woken through its loop, once; on the loop, directly.
    assert wakes.count == (1 if refuser == "thread" else 0)
    assert handoff.refuse() == []  # "second" was never queued


async def test_refuse_on_the_loop_wakes_a_thread_producer_waiting_for_room(slow_poll: None) -> None:
    handoff: Handoff[str] = Handoff(10)
    wakeup = counting_wakeup(handoff)
    await in_thread(lambda: handoff.put_in_thread("first", 10))
    second = Worker(lambda: handoff.put_in_thread("second", 5))
    wait_until_waiting(handoff, wakeup)
    assert not second.done.is_set()
    assert handoff.refuse() == ["first"]
    assert second.done.wait(DEADLINE), "refuse did not wake the producer waiting for room"
    second.join()
    assert isinstance(second.error, Closed)
    assert handoff.refuse() == []  # "second" was never queued


async def test_after_refuse_a_thread_consumer_waits_for_close(slow_poll: None) -> None:
    handoff: Handoff[str] = Handoff(100)
    wakeup = counting_wakeup(handoff)
    await handoff.put_in_loop("queued", 1)
    assert await in_thread(handoff.refuse) == ["queued"]
    with anyio.fail_after(DEADLINE):
        assert await in_thread(lambda: handoff.get_in_thread(timeout=0.05)) == []
    wakeup.waiting.clear()
    consumer = Worker(handoff.get_in_thread)
    wait_until_waiting(handoff, wakeup)
    assert not consumer.done.wait(0.05), "a get after refuse() returned before close()"
    handoff.close()
    assert consumer.done.wait(DEADLINE), "close did not wake the consumer"
    consumer.join()
    assert isinstance(consumer.error, Closed)


async def test_after_refuse_a_loop_consumer_waits_for_close() -> None:
    handoff: Handoff[str] = Handoff(100)
    await in_thread(lambda: handoff.put_in_thread("queued", 1))
    assert handoff.refuse() == ["queued"]
    outcome: list[str] = []

    async def consume() -> None:
        try:
            outcome.append(repr(await handoff.get_in_loop()))
        except Closed:
            outcome.append("closed")

    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(Closed):
                await in_thread(lambda: handoff.put_in_thread("late", 1))
            await anyio.wait_all_tasks_blocked()
            assert not outcome, "a get after refuse() returned before close()"
            await in_thread(handoff.close)
    assert outcome == ["closed"]


# -- push_in_loop: now, whatever the budget ---------------------------------------------------------


async def test_push_in_loop_ignores_the_budget_and_counts_nothing_against_it() -> None:
    handoff: Handoff[str] = Handoff(10)
    await handoff.put_in_loop("full", 10)
    handoff.push_in_loop("p1", "p2")  # the budget is spent: pushed all the same
    assert await in_thread(handoff.get_in_thread) == ["full", "p1", "p2"]

    handoff.push_in_loop("p3", "p4", "p5")
    with anyio.fail_after(DEADLINE):
        # Pushed items take no room: a whole-budget put, even an oversized one, does not
        # wait for them (nobody would take them in this test: waiting would time out).
        await handoff.put_in_loop("whole budget", 10)
    # ...but what was put does count: one more byte waits until the thread takes.
    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            tg.start_soon(handoff.put_in_loop, "one more", 1)
            await anyio.wait_all_tasks_blocked()
            assert await in_thread(handoff.get_in_thread) == ["p3", "p4", "p5", "whole budget"]
    assert await in_thread(handoff.get_in_thread) == ["one more"]

    handoff.push_in_loop("p6")
    with anyio.fail_after(DEADLINE):
        await handoff.put_in_loop("huge", 25)
    # A thread producer's budget check does not count them either.
    handoff.push_in_loop("p7")
    assert await in_thread(handoff.get_in_thread) == ["p6", "huge", "p7"]
    handoff.push_in_loop("p8")
    with anyio.fail_after(DEADLINE):  # should_stop: had it waited, it would raise
        await in_thread(lambda: handoff.put_in_thread("thread's whole budget", 10, should_stop=lambda: True))
    assert await handoff.get_in_loop() == ["p8", "thread's whole budget"]


async def test_push_in_loop_wakes_a_waiting_thread_once_for_all_its_items(
    monkeypatch: pytest.MonkeyPatch, slow_poll: None
) -> None:
    wakes = Wakes(monkeypatch)
    handoff: Handoff[str] = Handoff(10)
    wakeup = counting_wakeup(handoff)
    consumer = Worker(handoff.get_in_thread)
    wait_until_waiting(handoff, wakeup)
    before = wakeup.wakes
    handoff.push_in_loop("status", "body", "end")
    assert wakeup.wakes - before == 1, "not one wake-up for all the pushed items"
    assert consumer.done.wait(DEADLINE), "the push did not wake the waiting thread"
    consumer.join()
    assert consumer.error is None
    assert consumer.result == ["status", "body", "end"]  # taken at once, in order
    assert wakes.count == 0  # the loop was never woken


async def test_push_in_loop_wakes_nobody_when_the_thread_is_not_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wakes = Wakes(monkeypatch)
    handoff: Handoff[str] = Handoff(10)
    wakeup = counting_wakeup(handoff)
    handoff.push_in_loop("a", "b")
    handoff.push_in_loop("c")
    assert wakeup.wakes == 0
    assert wakes.count == 0
    assert await in_thread(handoff.get_in_thread) == ["a", "b", "c"]


@pytest.mark.parametrize("end", ["close", "refuse"])
async def test_push_in_loop_raises_closed_once_closed_or_refused(end: str) -> None:
    handoff: Handoff[str] = Handoff(10)
    handoff.push_in_loop("before")
    if end == "close":
        handoff.close()
    else:
        assert handoff.refuse() == ["before"]
    with pytest.raises(Closed):
        handoff.push_in_loop("after", "and after")
    if end == "close":
        assert await in_thread(handoff.get_in_thread) == ["before"]  # still delivered
        with pytest.raises(Closed):
            await in_thread(lambda: handoff.get_in_thread(timeout=0))
    else:
        assert handoff.refuse() == []


# -- get_in_thread(timeout=) ------------------------------------------------------------------------


@pytest.mark.parametrize("poll", [0.02, 30.0])
async def test_get_in_thread_returns_nothing_after_its_timeout(
    monkeypatch: pytest.MonkeyPatch, poll: float
) -> None:
    """The timeout, not the poll: shorter polls (should_stop checks) do not end it early,
    a longer poll does not make it late."""
    monkeypatch.setattr(bridge.handoff, "_THREAD_POLL", poll)
    handoff: Handoff[str] = Handoff(10)

    def timed_get() -> tuple[list[str], float]:
        start = time.monotonic()
        got = handoff.get_in_thread(timeout=0.1)
        return got, time.monotonic() - start

    with anyio.fail_after(DEADLINE):
        got, elapsed = await in_thread(timed_get)
    assert got == []
    assert 0.09 <= elapsed < 2.0, elapsed
    with anyio.fail_after(DEADLINE):
        assert await in_thread(lambda: handoff.get_in_thread(timeout=0)) == []
    await handoff.put_in_loop("still delivered", 1)
    assert await in_thread(lambda: handoff.get_in_thread(timeout=0)) == ["still delivered"]


@pytest.mark.parametrize("how", ["put_in_loop", "push_in_loop"])
async def test_get_in_thread_with_a_timeout_returns_items_as_soon_as_they_come(
    slow_poll: None, how: str
) -> None:
    handoff: Handoff[str] = Handoff(10)
    wakeup = counting_wakeup(handoff)

    def timed_get() -> tuple[list[str], float]:
        start = time.monotonic()
        got = handoff.get_in_thread(timeout=20.0)
        return got, time.monotonic() - start

    consumer = Worker(timed_get)
    wait_until_waiting(handoff, wakeup)
    if how == "put_in_loop":
        await handoff.put_in_loop("now", 1)
    else:
        handoff.push_in_loop("now", "and now")
    assert consumer.done.wait(DEADLINE), "the items did not wake the get"
    consumer.join()
    assert consumer.error is None
    assert isinstance(consumer.result, tuple)
    got, elapsed = consumer.result
    assert got == (["now"] if how == "put_in_loop" else ["now", "and now"])
    assert elapsed < DEADLINE


async def test_get_in_thread_with_a_timeout_raises_closed_when_closed_and_empty(slow_poll: None) -> None:
    handoff: Handoff[str] = Handoff(10)
    wakeup = counting_wakeup(handoff)
    consumer = Worker(lambda: handoff.get_in_thread(timeout=20.0))
    wait_until_waiting(handoff, wakeup)
    handoff.close()
    assert consumer.done.wait(DEADLINE), "close did not wake a get with a timeout"
    consumer.join()
    assert isinstance(consumer.error, Closed)
    for timeout in (0.0, 0.05):
        with anyio.fail_after(DEADLINE), pytest.raises(Closed):
            await in_thread(functools.partial(handoff.get_in_thread, timeout=timeout))


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_get_in_thread_with_a_timeout_still_honours_should_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bridge.handoff, "_THREAD_POLL", 0.01)
    handoff: Handoff[str] = Handoff(10)
    stop = StopAfter(2)
    with anyio.fail_after(DEADLINE), pytest.raises(Closed, match="stopped"):
        await in_thread(lambda: handoff.get_in_thread(should_stop=stop, timeout=20.0))
    assert stop.calls == 2


# -- loop_ref -----------------------------------------------------------------------------------


async def test_loop_ref_is_the_ref_given_or_the_current_loops() -> None:
    ref = LoopRef()
    assert Handoff(10, ref).loop_ref is ref
    made_here: Handoff[str] = Handoff(10)
    assert made_here.loop_ref.thread == threading.get_ident()
    assert isinstance(made_here.loop_ref.new_event(), type(ref.new_event()))


# -- the property: exactly the items, in order, never over budget but for one ----------------------


_SIZES = st.lists(st.integers(min_value=0, max_value=60), min_size=0, max_size=40)


def run_property(
    backend: str, direction: str, sizes: list[int], limit: int, pauses: list[bool]
) -> list[list[tuple[int, int]]]:
    """Every item (index, size) through a Handoff; returns the consumer's batches."""
    items = list(enumerate(sizes))
    batches: list[list[tuple[int, int]]] = []

    def pause(step: int) -> bool:
        return bool(pauses) and pauses[step % len(pauses)]

    async def main() -> None:
        handoff: Handoff[tuple[int, int]] = Handoff(limit)
        if direction == "thread-to-loop":

            def produce() -> None:
                try:
                    for step, item in enumerate(items):
                        if pause(step):
                            time.sleep(0.0002)
                        handoff.put_in_thread(item, item[1])
                finally:
                    handoff.close()

            producer = Worker(produce)
            with anyio.fail_after(DEADLINE):
                step = 0
                while True:
                    if pause(step + 1):
                        await anyio.sleep(0.0002)
                    step += 1
                    try:
                        batches.append(await handoff.get_in_loop())
                    except Closed:
                        break
            producer.join()
            assert producer.error is None
        else:

            def consume() -> None:
                for step in range(len(items) + 2):
                    if pause(step + 1):
                        time.sleep(0.0002)
                    try:
                        batches.append(handoff.get_in_thread())
                    except Closed:
                        return

            consumer = Worker(consume)
            with anyio.fail_after(DEADLINE):
                for step, item in enumerate(items):
                    if pause(step):
                        await anyio.sleep(0.0002)
                    await handoff.put_in_loop(item, item[1])
                handoff.close()
            await in_thread(consumer.join)
            assert consumer.error is None

    anyio.run(main, backend=backend)
    return batches


@pytest.mark.parametrize("direction", ["thread-to-loop", "loop-to-thread"])
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sizes=_SIZES,
    limit=st.integers(min_value=1, max_value=40),
    pauses=st.lists(st.booleans(), max_size=8),
)
def test_the_consumer_gets_exactly_the_items_in_order_within_budget(
    backend: str, direction: str, sizes: list[int], limit: int, pauses: list[bool]
) -> None:
    batches = run_property(backend, direction, sizes, limit, pauses)
    assert [item for batch in batches for item in batch] == list(enumerate(sizes))
    for batch in batches:
        assert batch, "a get returned nothing"
        # A get takes the whole queue: a batch is what was queued at that moment. Over
        # budget, it is one item alone (by bytes: zero-byte items take no room, so one
        # that came first may share the queue with it).
        queued = sum(size for _, size in batch)
        assert queued <= limit or len([size for _, size in batch if size]) == 1, (batch, limit)


# -- the property: refuse, close, put, push and get, interleaved: every item exactly once ----------

_PRODUCER_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(min_value=0, max_value=30)),
        st.tuples(st.just("push"), st.integers(min_value=0, max_value=3)),  # loop producers only
        st.tuples(st.sampled_from(["close", "pause"]), st.just(0)),
    ),
    max_size=30,
)
_CONSUMER_OPS = st.lists(st.sampled_from(["get", "poll", "refuse", "close", "pause"]), max_size=12)


def run_interleaving(
    backend: str,
    direction: str,
    limit: int,
    producer_ops: list[tuple[str, int]],
    consumer_ops: list[str],
) -> tuple[list[int], list[tuple[str, list[int]]], dict[int, int]]:
    """The producer runs its ops (then closes, as it does on Closed); the consumer runs
    its ops, then gets until Closed. Returns what the producer queued (puts and pushes
    that did not raise), the consumer's takes in order (``get``/``poll`` batches,
    ``refuse`` lists), and each item's size (0 when pushed)."""
    produced: list[int] = []
    taken: list[tuple[str, list[int]]] = []
    sizes: dict[int, int] = {}

    def next_items(op: str, arg: int) -> list[int]:
        first = len(sizes)
        count = 1 if op == "put" else arg
        for item in range(first, first + count):
            sizes[item] = arg if op == "put" else 0
        return list(range(first, first + count))

    async def main() -> None:
        handoff: Handoff[int] = Handoff(limit)
        if direction == "loop-to-thread":

            def consume() -> None:
                try:
                    for op in consumer_ops:
                        if op == "get":
                            taken.append(("get", handoff.get_in_thread()))
                        elif op == "poll":
                            taken.append(("poll", handoff.get_in_thread(timeout=0.001)))
                        elif op == "refuse":
                            taken.append(("refuse", handoff.refuse()))
                        elif op == "close":
                            handoff.close()
                        else:
                            time.sleep(0.0002)
                    while True:
                        taken.append(("get", handoff.get_in_thread()))
                except Closed:
                    pass

            consumer = Worker(consume)
            with anyio.fail_after(DEADLINE):
                try:
                    for op, arg in producer_ops:
                        if op == "close":
                            break
                        if op == "pause":
                            await anyio.sleep(0.0002)
                            continue
                        items = next_items(op, arg)
                        if op == "put":
                            await handoff.put_in_loop(items[0], arg)
                        else:
                            handoff.push_in_loop(*items)
                        produced.extend(items)
                except Closed:
                    pass
                finally:
                    handoff.close()
                await in_thread(consumer.join)
            assert consumer.error is None
        else:

            def produce() -> None:
                try:
                    for op, arg in producer_ops:
                        if op == "close":
                            break
                        if op == "pause":
                            time.sleep(0.0002)
                        elif op == "put":
                            (item,) = next_items(op, arg)
                            handoff.put_in_thread(item, arg)
                            produced.append(item)
                        # (no push from a thread: push_in_loop is the loop's)
                except Closed:
                    pass
                finally:
                    handoff.close()

            producer = Worker(produce)
            with anyio.fail_after(DEADLINE):
                try:
                    for op in consumer_ops:
                        if op == "get":
                            taken.append(("get", await handoff.get_in_loop()))
                        elif op == "poll":
                            polled: list[int] = []
                            with anyio.move_on_after(0.001):
                                polled = await handoff.get_in_loop()
                            taken.append(("poll", polled))
                        elif op == "refuse":
                            taken.append(("refuse", handoff.refuse()))
                        elif op == "close":
                            handoff.close()
                        else:
                            await anyio.sleep(0.0002)
                    while True:
                        taken.append(("get", await handoff.get_in_loop()))
                except Closed:
                    pass
                await in_thread(producer.join)
            assert producer.error is None

    anyio.run(main, backend=backend)
    return produced, taken, sizes


@pytest.mark.parametrize("direction", ["thread-to-loop", "loop-to-thread"])
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    limit=st.integers(min_value=1, max_value=40),
    producer_ops=_PRODUCER_OPS,
    consumer_ops=_CONSUMER_OPS,
)
def test_every_item_is_taken_by_a_get_or_handed_back_by_refuse_exactly_once_in_order(
    backend: str, direction: str, limit: int, producer_ops: list[tuple[str, int]], consumer_ops: list[str]
) -> None:
    produced, taken, sizes = run_interleaving(backend, direction, limit, producer_ops, consumer_ops)
    assert [item for _, batch in taken for item in batch] == produced
    refused = False
    for kind, batch in taken:
        if refused:
            assert batch == [], f"{batch} taken after refuse(): puts should have raised Closed"
        if kind == "get":
            assert batch, "a get without a timeout returned nothing"
        if kind == "refuse":
            refused = True
        sized = [sizes[item] for item in batch if sizes[item]]
        assert sum(sized) <= limit or len(sized) == 1, (batch, limit)
