"""Property-based tests of AsgiToWsgi: an ASGI app whose behaviour hypothesis draws,
called as a WSGI app in the test's own thread (the way a WSGI server calls it), on the
asyncio and the trio backend.

Each example builds an environ (:class:`RequestPlan`: method, path, query, headers,
``CONTENT_LENGTH`` right, short, missing or invalid, ``wsgi.input`` whole, in short
reads or raising, ``wsgi.input_terminated``) and an app (:class:`AppPlan`: a list of
send actions, correct or mutated: body before start, start twice, no start, a raise
before or after start, an early return, unknown and ill-typed messages, work after the
final body; how much of the body it reads; an endless stream the server cuts off).
:func:`expected` computes what a correct adapter answers; :func:`run_and_check` calls
the adapter, iterates and closes the result (optionally early, as a server whose client
left), and checks:

* bounded: the call, the iteration and close() end within a bound (the request runs in
  a helper thread that the test joins with a timeout);
* the status line, headers and body are the oracle's; an error before the first body
  bytes is raised from the call, one after them from the iteration, and only the
  app's own error or a documented bridge error escapes; close() never raises;
* the app's receive() gets a legal sequence: the body whole and in order, or a prefix
  then ``http.disconnect``; a receive() after the response returns ``http.disconnect``;
* once close() returned, the app's task has ended; after ``adapter.close()`` its loop
  thread is gone and the thread count is back to the baseline;
* the objects the app made are gone (after ``gc.collect()``; and in a second test with
  the collector disabled, by reference counting alone).
"""

from __future__ import annotations

import gc
import io
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import anyio
import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from bridge import AsgiToWsgi
from bridge.errors import BridgeError, ClientDisconnected, ResponseError

from .conftest import PROFILE_TIMEOUT
from .lifetime import cycle_garbage, wait_dead

# How long one request (call, iteration, close) may take before it counts as a hang:
# the grace period, plus the adapter's wait for a cancelled task, plus slack.
REQUEST_BOUND = 8.0
ENDLESS_BOUND = 2.5
GRACE = 0.05
PRELOADS = (0, 8, 1024 * 1024)


class AppError(Exception):
    """The ASGI app's own exception."""


def app_error(rec: Recorder) -> AppError:
    error = AppError("boom")
    error.token = rec.token()  # type: ignore[attr-defined]
    return error


class Token:
    """An object the app makes during the request; it must not outlive the request."""


# -- plans ---------------------------------------------------------------------------------


@dataclass
class RequestPlan:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    length: str  # "exact" | "short" (the stream has fewer bytes) | "terminated" | "none" | "invalid"
    stream: str  # "bytesio" | "short_reads" | "raises"
    raise_after: int  # for "raises": bytes before read() raises
    preload: int
    close_after: Optional[int]  # the server closes the response after this many chunks


@dataclass
class AppPlan:
    actions: list[tuple[Any, ...]]
    catch_send_errors: bool  # catch ResponseError from send() and go on
    read: str  # "none" | "all" | "one"
    receive_after: bool  # after the actions, call receive() once more (expects http.disconnect)
    endless: bool  # after the actions, send more_body=True chunks forever
    stubborn: bool  # the endless stream ignores ClientDisconnected (only cancellation ends it)


HEADER_NAMES = st.sampled_from(["HTTP_X_A", "HTTP_X_B", "HTTP_ACCEPT", "HTTP_COOKIE", "CONTENT_TYPE"])
LATIN1 = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=6
)


def rarely(draw: st.DrawFn, odds: int) -> bool:
    """True about once in ``odds + 1`` draws (and False is what shrinking goes to)."""
    return draw(st.sampled_from([False] * odds + [True]))


@st.composite
def request_plans(draw: st.DrawFn) -> RequestPlan:
    body = draw(st.one_of(st.just(b""), st.binary(max_size=40)))
    return RequestPlan(
        method=draw(st.sampled_from(["GET", "POST", "HEAD", "put"])),
        path=draw(st.sampled_from(["/", "/a/b", "/caf\xc3\xa9", "/a%2Fb"])),
        query=draw(st.sampled_from(["", "x=1", "a=%E9&b=\xe9"])),
        headers=draw(st.dictionaries(HEADER_NAMES, LATIN1, max_size=3)),
        body=body,
        length=draw(st.sampled_from(["exact"] * 4 + ["short", "terminated", "none", "invalid"])),
        stream=draw(st.sampled_from(["bytesio", "bytesio", "short_reads", "raises"])),
        raise_after=draw(st.integers(0, len(body))),
        preload=draw(st.sampled_from(PRELOADS)),
        close_after=draw(st.integers(0, 3)) if rarely(draw, 4) else None,
    )


START = ("start",)


@st.composite
def app_plans(draw: st.DrawFn) -> AppPlan:
    status = draw(st.sampled_from([200, 404, 299, 201, 500]))
    headers = draw(
        st.lists(
            st.sampled_from(
                [
                    (b"content-type", b"text/plain"),
                    (b"x-one", b"caf\xe9"),
                    (b"set-cookie", b"a=1"),
                    (b"set-cookie", b"b=2"),
                    (b"transfer-encoding", b"chunked"),
                ]
            ),
            max_size=3,
        )
    )
    chunks = draw(st.lists(st.binary(max_size=8), max_size=4))
    final = draw(st.binary(max_size=8))
    actions: list[tuple[Any, ...]] = [("start", status, headers)]
    actions += [("body", c, True) for c in chunks]
    actions.append(("body", final, False))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2]))):
        kind = draw(
            st.sampled_from(
                [
                    "drop_start",
                    "start_twice",
                    "body_first",
                    "raise",
                    "return_early",
                    "after_final",
                    "unknown",
                    "trailers",
                    "ill_status",
                    "ill_header",
                    "ill_body",
                    "bytearray_body",
                ]
            )
        )
        at = draw(st.integers(0, len(actions)))
        if kind == "drop_start":
            actions = [a for a in actions if a[0] != "start"]
        elif kind == "start_twice":
            actions.insert(at, ("start", 201, []))
        elif kind == "body_first":
            actions.insert(0, ("body", b"early", True))
        elif kind == "raise":
            actions.insert(at, ("raise",))
        elif kind == "return_early":
            actions = actions[:at]
        elif kind == "after_final":
            actions.append(("body", b"late", draw(st.booleans())))
        elif kind == "unknown":
            actions.insert(at, ("message", {"type": "http.response.bogus"}))
        elif kind == "trailers":
            actions.insert(at, ("message", {"type": "http.response.trailers", "headers": []}))
        elif kind == "ill_status":
            actions = [("start", "200", headers) if a[0] == "start" else a for a in actions]
        elif kind == "ill_header":
            actions = [("start", a[1], [("x-str", "v")]) if a[0] == "start" else a for a in actions]
        elif kind == "ill_body":
            actions.insert(at, ("message", {"type": "http.response.body", "body": "text", "more_body": True}))
        elif kind == "bytearray_body":
            actions.insert(at, ("body", bytearray(b"ba"), True))
    endless = rarely(draw, 6)
    if endless:
        # An endless stream follows a start and a chunk; drop the final body.
        actions = [a for a in actions if not (a[0] == "body" and not a[2])]
    return AppPlan(
        actions=actions,
        catch_send_errors=rarely(draw, 3),
        read=draw(st.sampled_from(["none", "all", "all", "one"])),
        receive_after=rarely(draw, 3),
        endless=endless,
        stubborn=endless and draw(st.booleans()),
    )


# -- the request ---------------------------------------------------------------------------


class ShortReads(io.RawIOBase):
    """read(n) returns at most 3 bytes at a time, never EOF before the end."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = len(self.data)
        piece, self.data = self.data[: min(size, 3)], self.data[min(size, 3) :]
        return piece


class Raising(io.RawIOBase):
    """read() raises OSError once ``after`` bytes have been read (a client that left)."""

    def __init__(self, data: bytes, after: int) -> None:
        self.data = data[:after]

    def read(self, size: int = -1) -> bytes:
        if not self.data:
            raise OSError("client went away")
        if size is None or size < 0:
            size = len(self.data)
        piece, self.data = self.data[:size], self.data[size:]
        return piece


def make_environ(plan: RequestPlan) -> dict[str, Any]:
    data = plan.body
    if plan.stream == "bytesio":
        stream: Any = io.BytesIO(data)
    elif plan.stream == "short_reads":
        stream = ShortReads(data)
    else:
        stream = Raising(data, plan.raise_after)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": plan.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": plan.path,
        "QUERY_STRING": plan.query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": stream,
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    environ.update(plan.headers)
    if plan.length == "exact":
        environ["CONTENT_LENGTH"] = str(len(data))
    elif plan.length == "short":
        environ["CONTENT_LENGTH"] = str(len(data) + 5)
    elif plan.length == "terminated":
        environ["wsgi.input_terminated"] = True
    elif plan.length == "invalid":
        environ["CONTENT_LENGTH"] = "abc"
    return environ


def request_body(plan: RequestPlan) -> tuple[bytes, bool]:
    """The body the app should receive, and whether it arrives whole (False: a prefix
    of it, then http.disconnect)."""
    if plan.length in ("none", "invalid"):
        return b"", True
    if plan.stream == "raises":
        # The stream gives raise_after bytes, then raises: that is a client that left,
        # unless the body was complete by then.
        if plan.length == "exact" and plan.raise_after >= len(plan.body):
            return plan.body, True
        return plan.body[: plan.raise_after], False
    if plan.length == "short":
        return plan.body, False
    return plan.body, True


# -- the app -------------------------------------------------------------------------------


@dataclass
class Recorder:
    received: list[dict[str, Any]] = field(default_factory=list)
    after_receive: Optional[dict[str, Any]] = None
    running: bool = False
    ended: bool = False
    endless_capped: bool = False
    scope: dict[str, Any] = field(default_factory=dict)
    token_refs: list[weakref.ref[Any]] = field(default_factory=list)

    def token(self) -> Token:
        token = Token()
        self.token_refs.append(weakref.ref(token))
        return token


def make_app(plan: AppPlan, rec: Recorder) -> Callable[..., Any]:
    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        rec.running = True
        token = rec.token()  # noqa: F841 - held by the app's frame
        try:
            rec.scope = {k: scope.get(k) for k in ("method", "path", "query_string", "headers")}
            if plan.read != "none":
                while True:
                    message = await receive()
                    rec.received.append(message)
                    ended = message["type"] != "http.request" or not message.get("more_body")
                    if plan.read == "one" or ended:
                        break
            for action in plan.actions:
                if action[0] == "raise":
                    # (No name for it in this frame: that would be the app's own cycle.)
                    raise app_error(rec)
                if action[0] == "start":
                    message = {"type": "http.response.start", "status": action[1], "headers": action[2]}
                elif action[0] == "body":
                    message = {"type": "http.response.body", "body": action[1], "more_body": action[2]}
                else:
                    message = dict(action[1])
                try:
                    await send(message)
                except ResponseError:
                    if not plan.catch_send_errors:
                        raise
            if plan.endless:
                deadline = time.monotonic() + ENDLESS_BOUND
                while time.monotonic() < deadline:
                    try:
                        await send({"type": "http.response.body", "body": b"tick", "more_body": True})
                    except OSError:
                        if not plan.stubborn:
                            raise
                    await anyio.sleep(0.001)
                rec.endless_capped = True
            if plan.receive_after:
                with anyio.fail_after(2):
                    rec.after_receive = await receive()
        finally:
            rec.ended = True

    return app


# -- the oracle ----------------------------------------------------------------------------


@dataclass
class Expected:
    raises_from_call: Optional[type[BaseException]] = None
    status: Optional[str] = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    raises_from_iteration: Optional[type[BaseException]] = None
    endless: bool = False  # the body goes on with b"tick" until the server closes it


_HOP = {"transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer", "trailers"}


def status_line(code: int) -> str:
    from http import HTTPStatus

    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Unknown"


def expected(plan: AppPlan, head: bool) -> Expected:
    """What a correct adapter answers for this app (the server reading it all)."""
    start: Optional[tuple[Any, ...]] = None
    chunks: list[bytes] = []
    finished = False
    error: Optional[type[BaseException]] = None
    body_seen = False  # the response went to the WSGI server (the first body bytes)
    error_after_body = False

    for action in plan.actions:
        failed: Optional[type[BaseException]] = None
        if action[0] == "raise":
            failed = AppError
        elif action[0] == "start":
            ill_typed = type(action[1]) is not int or any(type(v) is not bytes for h in action[2] for v in h)
            if start is not None or ill_typed:
                failed = ResponseError
            else:
                start = action
        elif action[0] in ("body", "message"):
            message = (
                {"type": "http.response.body", "body": action[1], "more_body": action[2]}
                if action[0] == "body"
                else action[1]
            )
            kind = message["type"]
            if kind == "http.response.trailers":
                continue
            if kind != "http.response.body" or start is None:
                failed = ResponseError
            elif finished:
                continue
            elif not isinstance(message["body"], (bytes, bytearray)):
                failed = ResponseError
            else:
                data = bytes(message["body"])
                more = message["more_body"]
                if head:
                    data = b""
                if data:
                    chunks.append(data)
                if not more:
                    finished = True
                if data or not more or head:
                    body_seen = True
        if failed is not None:
            if failed is ResponseError and plan.catch_send_errors:
                continue
            error = failed
            error_after_body = body_seen
            break

    if error is not None and not error_after_body:
        return Expected(raises_from_call=error)
    if start is None:
        if plan.endless:
            # The endless stream's first send has no start before it: ResponseError.
            return Expected(raises_from_call=ResponseError)
        return Expected(raises_from_call=ResponseError)
    exp = Expected(status=status_line(start[1]), headers=decode(start[2]))
    if head:
        return exp  # HEAD: no body, and the response is answered at the first body message
    exp.body = b"".join(chunks)
    if error is not None and not finished:
        exp.raises_from_iteration = error
    elif plan.endless and not finished and error is None:
        exp.endless = True
    return exp


def decode(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers if k.decode("latin-1") not in _HOP]


# -- running one example -------------------------------------------------------------------


@dataclass(repr=False)
class Outcome:
    status: Optional[str] = None
    headers: Optional[list[tuple[str, str]]] = None
    start_calls: int = 0
    chunks: list[bytes] = field(default_factory=list)
    call_error: Optional[type[BaseException]] = None
    iteration_error: Optional[type[BaseException]] = None
    close_error: Optional[str] = None
    error_repr: str = ""
    hung: bool = False
    app_running_after_close: bool = False
    closed_early: bool = False

    def __repr__(self) -> str:
        fields = {k: v for k, v in vars(self).items() if k != "chunks"}
        body = b"".join(self.chunks)
        more = "..." if len(body) > 60 else ""
        return f"Outcome({fields}, {len(self.chunks)} chunks, body={body[:60]!r}{more})"


def serve(adapter: AsgiToWsgi, environ: dict[str, Any], close_after: Optional[int], rec: Recorder) -> Outcome:
    """What a WSGI server does: call, iterate, close (early if the client left)."""
    outcome = Outcome()

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        outcome.start_calls += 1
        outcome.status, outcome.headers = status, list(headers)
        return lambda data: None

    try:
        result = adapter(environ, start_response)
    except BaseException as exc:
        outcome.call_error = type(exc)
        outcome.error_repr = repr(exc)
        return outcome
    try:
        for chunk in result:
            assert type(chunk) is bytes, chunk
            outcome.chunks.append(chunk)
            if close_after is not None and len(outcome.chunks) >= close_after:
                outcome.closed_early = True
                break
    except BaseException as exc:
        outcome.iteration_error = type(exc)
        outcome.error_repr = repr(exc)
    finally:
        close = getattr(result, "close", None)
        try:
            if close is not None:
                close()
        except BaseException as exc:
            outcome.close_error = repr(exc)
        del result
    # close() returned: the server is done with the request, and so must the app be
    # (PEP 3333: close() is the end of the request), unless its response was complete
    # and it works on in the background, which it may for a moment.
    outcome.app_running_after_close = not rec.ended
    return outcome


def run_bounded(func: Callable[[], Outcome], timeout: float) -> Outcome:
    box: list[Outcome] = []
    thread = threading.Thread(target=lambda: box.append(func()), name="props-wsgi-server", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return Outcome(hung=True)
    return box[0]


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("bridge-") and t.name.endswith("-loop")]


def run_request(
    backend: str, req: RequestPlan, plan: AppPlan, rec: Recorder, close_after: Optional[int]
) -> Outcome:
    """One request through a fresh adapter, closed afterwards (its loop thread stops)."""
    adapter = AsgiToWsgi(
        make_app(plan, rec),
        backend=backend,  # type: ignore[arg-type]
        lifespan="off",
        disconnect_grace=GRACE,
        preload_body=req.preload,
    )
    environ = make_environ(req)
    try:
        return run_bounded(lambda: serve(adapter, environ, close_after, rec), REQUEST_BOUND)
    finally:
        adapter.close()


def run_and_check(backend: str, req: RequestPlan, plan: AppPlan, *, collect: bool) -> None:
    threads_before = threading.active_count()
    loops_before = set(loop_threads())
    rec = Recorder()
    close_after = req.close_after
    if plan.endless and close_after is None:
        close_after = 2  # only the server ends an endless stream
    outcome = run_request(backend, req, plan, rec, close_after)
    context = f"\nrequest={req}\napp={plan}\noutcome={outcome}\nrec={rec}"

    # 1. Bounded, and an endless stream was stopped rather than left to its own cap.
    assert not outcome.hung, "the request did not end within the bound" + context
    assert not rec.endless_capped, "the endless stream was never stopped" + context
    assert outcome.close_error is None, "close() raised" + context

    head = req.method.upper() == "HEAD"
    if req.length == "invalid":
        assert outcome.status == "400 Bad Request" and not rec.running, context
        exp = None
    else:
        exp = expected(plan, head)
    loose = close_after is not None or (plan.read != "none" and not request_body(req)[1])
    event(f"loose={loose} call_raises={exp and exp.raises_from_call and exp.raises_from_call.__name__}")

    # 2. Only the app's own error or a documented bridge error escapes.
    for error in (outcome.call_error, outcome.iteration_error):
        if error is not None:
            assert issubclass(error, (AppError, BridgeError)), f"undocumented: {outcome.error_repr}" + context

    # 3. The response.
    if exp is not None:
        if exp.raises_from_call is not None:
            if not loose:
                assert outcome.call_error is exp.raises_from_call, context
            assert outcome.start_calls == 0, context
        elif not loose:
            assert outcome.call_error is None, context
        if outcome.call_error is None and exp.raises_from_call is None:
            assert outcome.start_calls == 1, context
            assert outcome.status == exp.status, context
            assert outcome.headers == exp.headers, context
            body = b"".join(outcome.chunks)
            if exp.endless:
                # The server may close before the app's scripted bodies are all out.
                assert body[: len(exp.body)] == exp.body[: len(body)], context
                assert (b"tick" * (len(body) // 4 + 1)).startswith(body[len(exp.body) :]), context
                assert outcome.closed_early or outcome.iteration_error is not None or loose, context
            elif outcome.closed_early:
                assert exp.body.startswith(body), context
            else:
                assert body == exp.body, context
                assert outcome.iteration_error is exp.raises_from_iteration, context
            if head:
                assert body == b"", context

    # 4. What the app received: the body whole and in order, or a prefix then a disconnect.
    want, whole = request_body(req)
    if rec.received:
        kinds = [m["type"] for m in rec.received]
        assert all(k == "http.request" for k in kinds[:-1]), context
        got = b"".join(m.get("body", b"") for m in rec.received)
        assert all(type(m.get("body", b"")) is bytes for m in rec.received), context
        if plan.read == "all":
            if whole:
                assert kinds[-1] == "http.request" and not rec.received[-1].get("more_body"), context
                assert got == want, context
            else:
                assert kinds[-1] == "http.disconnect", "a short body looked complete" + context
                assert want.startswith(got), context
        else:
            assert want.startswith(got), context
    if rec.after_receive is not None and plan.read == "all" and whole:
        assert rec.after_receive == {"type": "http.disconnect"}, context

    # 5. close() returned: the app's task has ended (a complete response may leave it
    #    working on for a moment; the adapter's close() above has waited for that).
    assert rec.ended or not rec.running, "the app's task outlived the adapter" + context
    if outcome.closed_early and rec.running and not rec.ended:
        raise AssertionError("the app still runs after the server closed the response" + context)

    # 6. Threads: the loop thread is gone, the count is back to the baseline.
    for thread in set(loop_threads()) - loops_before:
        thread.join(2)
        assert not thread.is_alive(), f"{thread.name} outlived adapter.close()" + context
    deadline = time.monotonic() + 2
    while threading.active_count() > threads_before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= threads_before, (
        f"threads: {threading.active_count()} after, {threads_before} before: "
        f"{[t.name for t in threading.enumerate()]}" + context
    )

    # 7. Nothing the app made outlives the request.
    del outcome
    # A worker may still be leaving bridge's code for a moment; a cycle never goes.
    alive = wait_dead(rec.token_refs, collect=collect, timeout=1.0 if collect else 0.3)
    if alive:
        how = "" if collect else f" (gc disabled: kept by a reference cycle: {cycle_garbage()})"
        raise AssertionError(f"{len(alive)} object(s) the app made outlived the request{how}{context}")


# -- the properties ------------------------------------------------------------------------


BACKENDS = pytest.mark.parametrize("backend", ["asyncio", "trio"])


_PLAIN_GET = RequestPlan("GET", "/", "", {}, b"", "exact", "bytesio", 0, 0, None)


@BACKENDS
@pytest.mark.timeout(PROFILE_TIMEOUT)
@given(req=request_plans(), plan=app_plans())
# Found by a long run: an app that swallows the error of a broken send() and waits in
# receive() held the WSGI thread for good; the request now fails at once.
@example(
    req=_PLAIN_GET,
    plan=AppPlan(
        [("body", b"", False)],
        catch_send_errors=True,
        read="all",
        receive_after=True,
        endless=False,
        stubborn=False,
    ),
)
# ...and a second start after the final body, logged with the app's traceback.
@example(
    req=_PLAIN_GET,
    plan=AppPlan(
        [
            ("start", 200, []),
            ("body", b"", True),
            ("body", b"", True),
            ("body", b"", False),
            ("start", 201, []),
        ],
        catch_send_errors=False,
        read="none",
        receive_after=False,
        endless=False,
        stubborn=False,
    ),
)
def test_asgi_app_behaviours(backend: str, req: RequestPlan, plan: AppPlan) -> None:
    run_and_check(backend, req, plan, collect=True)


@BACKENDS
@pytest.mark.timeout(PROFILE_TIMEOUT)
@given(req=request_plans(), plan=app_plans())
def test_app_objects_die_by_reference_counting(backend: str, req: RequestPlan, plan: AppPlan) -> None:
    gc.collect()
    gc.disable()
    try:
        run_and_check(backend, req, plan, collect=False)
    finally:
        gc.enable()


_ = ClientDisconnected  # documented, and expected inside the app only
