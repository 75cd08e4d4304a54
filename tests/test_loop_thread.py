"""bridge.loop_thread on its own: an event loop (asyncio or trio) in a daemon thread,
started lazily, reached through a portal, stopped cleanly, restartable, and fresh in a
child after fork().

Real loops, real threads; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from typing import Iterator

import anyio
import pytest

from bridge.errors import BridgeError
from bridge.handoff import Handoff
from bridge.loop_thread import LoopThread
from tests.thread_leaks import DEADLINE, no_thread_leaks  # noqa: F401 - autouse fixture

BACKENDS = ["asyncio", "trio"]


@pytest.fixture(params=BACKENDS)
def loop_thread(request: pytest.FixtureRequest) -> Iterator[LoopThread]:
    loop = LoopThread(str(request.param))
    try:
        yield loop
    finally:
        loop.stop(DEADLINE)


def loop_threads(backend: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"bridge-{backend}-loop"]


def run_script(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def backend_name() -> str:
    return "asyncio" if anyio.get_cancelled_exc_class() is asyncio.CancelledError else "trio"


# -- lazy start -------------------------------------------------------------------------------


def test_nothing_runs_until_start(loop_thread: LoopThread) -> None:
    before = set(loop_threads(loop_thread.backend))
    assert not loop_thread.running
    assert loop_thread.portal is None
    assert loop_thread.loop_ref is None
    assert loop_thread.asyncio_loop is None
    assert not loop_thread.forked()
    assert set(loop_threads(loop_thread.backend)) == before


def test_start_runs_the_loop_in_a_daemon_thread_named_after_its_backend(loop_thread: LoopThread) -> None:
    before = set(loop_threads(loop_thread.backend))
    portal = loop_thread.start()
    assert loop_thread.running
    assert loop_thread.portal is portal
    (thread,) = set(loop_threads(loop_thread.backend)) - before
    assert thread.daemon
    assert portal.call(threading.current_thread) is thread
    assert portal.call(backend_name) == loop_thread.backend


def test_the_asyncio_loop_is_exposed_on_asyncio_only(loop_thread: LoopThread) -> None:
    portal = loop_thread.start()
    if loop_thread.backend == "asyncio":
        assert loop_thread.asyncio_loop is not None
        assert portal.call(asyncio.get_running_loop) is loop_thread.asyncio_loop
        # The hot path submits to it directly.
        future = asyncio.run_coroutine_threadsafe(backend_name(), loop_thread.asyncio_loop)
        assert future.result(DEADLINE) == "asyncio"
    else:
        assert loop_thread.asyncio_loop is None


def test_the_loop_ref_reaches_the_loop_from_other_threads(loop_thread: LoopThread) -> None:
    portal = loop_thread.start()
    ref = loop_thread.loop_ref
    assert ref is not None
    assert ref.thread == portal.call(threading.get_ident)
    handoff: Handoff[str] = Handoff(100, ref)  # made off the loop, with its ref
    future = portal.start_task_soon(handoff.get_in_loop)
    handoff.put_in_thread("hello", 5)
    assert future.result(DEADLINE) == ["hello"]


def test_backend_options_reach_the_loop() -> None:
    loop = LoopThread("asyncio", {"debug": True})
    try:
        portal = loop.start()

        async def debug() -> bool:
            return asyncio.get_running_loop().get_debug()

        assert portal.call(debug)
    finally:
        loop.stop(DEADLINE)


def test_a_loop_that_cannot_start_raises_bridge_error() -> None:
    loop = LoopThread("no-such-backend")
    with pytest.raises(BridgeError, match="could not start the no-such-backend") as info:
        loop.start()
    assert info.value.__cause__ is not None
    assert not loop.running
    loop.stop(DEADLINE)  # harmless


# -- stop -------------------------------------------------------------------------------------


def test_stop_cancels_what_still_runs_and_ends_the_thread(loop_thread: LoopThread) -> None:
    before = set(loop_threads(loop_thread.backend))
    portal = loop_thread.start()
    (thread,) = set(loop_threads(loop_thread.backend)) - before
    started = threading.Event()
    cleaned_up = threading.Event()

    async def forever() -> None:
        try:
            started.set()
            await anyio.sleep_forever()
        finally:
            cleaned_up.set()

    portal.start_task_soon(forever)
    assert started.wait(DEADLINE)
    loop_thread.stop(DEADLINE)
    assert cleaned_up.is_set(), "the task still running was not cancelled"
    assert not thread.is_alive(), "stop() returned before the thread ended"
    assert not loop_thread.running
    assert loop_thread.portal is None
    assert loop_thread.asyncio_loop is None


def test_stop_is_idempotent_and_harmless_before_start(loop_thread: LoopThread) -> None:
    loop_thread.stop(DEADLINE)
    assert not loop_thread.running
    portal = loop_thread.start()
    thread = portal.call(threading.current_thread)
    loop_thread.stop(DEADLINE)
    loop_thread.stop(DEADLINE)
    assert not loop_thread.running
    assert not thread.is_alive()


def test_the_loop_ref_wakes_nothing_once_stopped(loop_thread: LoopThread) -> None:
    portal = loop_thread.start()
    ref = loop_thread.loop_ref
    assert ref is not None
    event = portal.call(ref.new_event)
    loop_thread.stop(DEADLINE)
    assert ref.wake(event) is False


def test_restart_after_stop_gives_a_fresh_working_loop(loop_thread: LoopThread) -> None:
    first = loop_thread.start()
    first_thread = first.call(threading.current_thread)
    first_ref = loop_thread.loop_ref
    loop_thread.stop(DEADLINE)
    second = loop_thread.start()
    assert second is not first
    assert loop_thread.running
    second_thread = second.call(threading.current_thread)
    assert second_thread is not first_thread
    assert not first_thread.is_alive()
    assert loop_thread.loop_ref is not first_ref
    assert second.call(backend_name) == loop_thread.backend


@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_from_the_loops_own_thread_ends_the_loop(backend: str) -> None:
    loop = LoopThread(backend)
    portal = loop.start()
    thread = portal.call(threading.current_thread)
    try:
        portal.call(loop.stop)  # e.g. a shutdown hook that runs on the loop
        thread.join(1.0)  # the loop ends at once once told to
        assert not thread.is_alive(), "the loop thread runs on after stop()"
    finally:
        if thread.is_alive():  # clean up the orphan through the portal we kept
            portal.call(portal.stop, True)
            thread.join(DEADLINE)


# -- fork and interpreter exit ------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_forked_child_gets_a_fresh_loop_and_the_parent_keeps_its_own(backend: str) -> None:
    """In a subprocess (forking pytest itself, with its threads, is not safe): start a
    loop, fork; the child sees it is forked, its inherited loop is not running, stop() is
    a no-op there, and start() gives it a working loop of its own."""
    done = run_script(
        f"""
        import os, sys, threading, warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads, on 3.12+
        from bridge.loop_thread import LoopThread

        loop = LoopThread({backend!r})
        portal = loop.start()
        parent_pid = os.getpid()
        assert portal.call(os.getpid) == parent_pid
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                assert loop.forked()
                assert not loop.running
                loop.stop(1.0)  # must neither hang nor fail
                child_portal = loop.start()
                assert not loop.forked()
                assert loop.running
                assert child_portal.call(os.getpid) == os.getpid() != parent_pid
                loop.stop(5.0)
                assert not loop.running
                code = 0
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert not loop.forked()
        assert loop.running
        assert portal.call(os.getpid) == parent_pid
        loop.stop(5.0)
        print("ok")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_loop_never_stopped_does_not_hold_up_interpreter_exit(backend: str) -> None:
    done = run_script(
        f"""
        import anyio
        from bridge.loop_thread import LoopThread

        loop = LoopThread({backend!r})
        portal = loop.start()
        portal.start_task_soon(anyio.sleep_forever)
        print("exiting")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "exiting"
