"""Pin the Python calls into bridge's own code that one hello request costs.

Why: ``test_hops.py`` pins the wake-ups, the dominant cost; this pins the interpreter
work around them, which nothing else holds. Restructuring the core into state machines
and features added later (each small) made the in-process hello 10 to 20 % slower with
the wake-ups unchanged: an opcode count put the difference in a few hundred more
bytecodes per request, spread over new calls. Both threads run one after the other on a
hello, so every call is on the critical path.

Counted: ``call`` events of Python functions defined in ``bridge/`` (a profile hook on
every thread started after it is set, and on this one), per request, over sequential
hello requests, after a warm-up; the least over three batches (a worker thread that
wakes from its idle poll adds calls to one batch). Library code (asyncio, anyio) is not
counted: it differs between Python versions; bridge's own calls do not.

When a change deliberately adds or removes calls: run this test, read the counts from
its failure message, say in the commit message why the calls are worth it (or what was
saved), and update ``PINS``. A count that varies from run to run is a finding to
report, not a pin to loosen.
"""

from __future__ import annotations

import asyncio
import collections
import io
import os
import sys
import threading
import wsgiref.util
from types import FrameType
from typing import Any, Callable, Iterable

import pytest

import bridge
from bridge import AsgiToWsgi, WsgiToAsgi
from bridge._types import Message

BRIDGE_DIR = os.path.dirname(bridge.__file__) + os.sep
WARM_UP = 50
BATCH = 40

#: Calls into bridge's code per hello request, all threads together: the least and the
#: most. ``AsgiToWsgi``'s WSGI thread calls the hand-off's wait only when the app's
#: events are not there yet (a race by design, as its wake-ups in test_hops.py).
PINS = {
    "w2a": (56, 56),
    "a2w": (42, 43),
}


class CallCounter:
    """Counts calls of functions defined in bridge/, on every thread it is installed on."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.total = 0

    def hook(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(BRIDGE_DIR):
            self.total += 1
            self.calls[f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_code.co_name}"] += 1

    def __enter__(self) -> CallCounter:
        threading.setprofile(self.hook)
        sys.setprofile(self.hook)
        return self

    def __exit__(self, *exc_info: object) -> None:
        sys.setprofile(None)
        threading.setprofile(None)


def _per_request(counter: CallCounter, run_batch: Callable[[int], None]) -> tuple[float, list[str]]:
    """The least calls per request over three batches, and where they went (that batch's)."""
    best: tuple[float, list[str]] | None = None
    for _ in range(3):
        counter.total = 0
        counter.calls.clear()
        run_batch(BATCH)
        per_request = counter.total / BATCH
        if best is None or per_request < best[0]:
            where = [f"{name} {count / BATCH:g}" for name, count in counter.calls.most_common()]
            best = (per_request, where)
    assert best is not None
    return best


def _wsgi_hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [b"Hello, world!"]


async def _asgi_hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
        }
    )
    await send({"type": "http.response.body", "body": b"Hello, world!"})


_SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/",
    "raw_path": b"/",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"example.com")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 80),
}


def test_w2a_hello_calls() -> None:
    adapter = WsgiToAsgi(_wsgi_hello)
    sent: list[Message] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    async def requests(n: int) -> None:
        for _ in range(n):
            sent.clear()
            await adapter(dict(_SCOPE), receive, send)
            assert sent[0]["status"] == 200 and sent[-1]["body"] == b"Hello, world!", sent

    with CallCounter() as counter:
        loop = asyncio.new_event_loop()  # one loop for all batches: its workers stay
        try:

            def batch(n: int) -> None:
                loop.run_until_complete(asyncio.wait_for(requests(n), 30))

            batch(WARM_UP)
            calls, where = _per_request(counter, batch)
        finally:
            loop.close()
    low, high = PINS["w2a"]
    assert low <= calls <= high, f"WsgiToAsgi hello: {calls:g} calls into bridge per request; {where}"


def test_a2w_hello_calls() -> None:
    base: dict[str, Any] = {}
    wsgiref.util.setup_testing_defaults(base)
    base.update({"wsgi.multithread": True, "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_METHOD": "GET"})

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[..., Any]:
        assert status == "200 OK"
        return lambda data: None

    with CallCounter() as counter:
        adapter = AsgiToWsgi(_asgi_hello, lifespan="off")
        try:

            def batch(n: int) -> None:
                for _ in range(n):
                    environ = dict(base, CONTENT_LENGTH="")
                    environ["wsgi.input"] = io.BytesIO()
                    result = adapter(environ, start_response)
                    try:
                        assert b"".join(result) == b"Hello, world!"
                    finally:
                        close = getattr(result, "close", None)
                        if close is not None:
                            close()

            batch(WARM_UP)
            calls, where = _per_request(counter, batch)
        finally:
            adapter.close()
    low, high = PINS["a2w"]
    assert low <= calls <= high, f"AsgiToWsgi hello: {calls:g} calls into bridge per request; {where}"


@pytest.fixture(autouse=True)
def _no_profiler_left() -> Iterable[None]:
    yield
    assert sys.getprofile() is None
