"""``bridge check``: send probe requests through the adapter in-process and report the
protocol rules the app breaks (PEP 3333 or ASGI), each with the rule and a hint.

An inspector sits between the adapter and the app and watches every call the app
makes: ``start_response`` and the iterable on the WSGI side, each message on the ASGI
side. It only records; the app's calls go through unchanged, so what the adapter
itself refuses is seen as well.
"""

from __future__ import annotations

import io
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Literal, Sequence
from urllib.parse import quote

import anyio
from asgiref.compatibility import guarantee_single_callable

from .._types import ASGIApp, Environ, ExcInfo, Message, Receive, Scope, Send, StartResponse, WSGIApp
from ..asgi_to_wsgi import AsgiToWsgi
from ..environ import build_environ
from ..errors import BridgeError, HopByHopHeaderError, LifespanError, ResponseError
from ..http import HOP_BY_HOP, decode_asgi_headers, encode_response_headers, parse_asgi_status, parse_status
from ..wsgi_streams import ErrorStream
from ..wsgi_to_asgi import WsgiToAsgi
from .load import Loaded

__all__ = ["Finding", "Probe", "Report", "RULES", "check_app", "default_probes"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Rule:
    severity: Severity
    title: str
    hint: str


#: Every rule `check` knows, by id: what the spec says and what to do about it.
RULES: dict[str, Rule] = {
    "wsgi-status": Rule(
        "error",
        "PEP 3333: the status is a str of three digits, a space and a reason, like '200 OK'",
        "pass start_response('404 Not Found', headers), not an int or a bare phrase",
    ),
    "wsgi-headers": Rule(
        "error",
        "PEP 3333: headers are a list of (name, value) tuples of latin-1 str, without control characters",
        "build them as [('Content-Type', 'text/plain')]; encode other text (RFC 8187) first",
    ),
    "wsgi-hop-by-hop": Rule(
        "error",
        "PEP 3333: apps must not set hop-by-hop headers (Connection, Transfer-Encoding, Keep-Alive, ...)",
        "remove the header: the server owns the connection and frames the body itself",
    ),
    "wsgi-start-twice": Rule(
        "error",
        "PEP 3333: start_response may be called again only with exc_info, before the body starts",
        "call it once; to replace a response after an error, pass exc_info=sys.exc_info()",
    ),
    "wsgi-no-start": Rule(
        "error",
        "PEP 3333: start_response is called before the first body bytes",
        "call start_response(status, headers) before returning or yielding the body",
    ),
    "wsgi-iterable": Rule(
        "error",
        "PEP 3333: the app returns an iterable of bytes",
        "return [body] rather than body: iterating bytes gives ints, and a str is not bytes",
    ),
    "wsgi-chunk-type": Rule(
        "error",
        "PEP 3333: every item of the iterable is bytes",
        "encode text before yielding it: yield text.encode('utf-8')",
    ),
    "wsgi-write": Rule(
        "warning",
        "PEP 3333: write() is only for frameworks that cannot be changed",
        "return or yield the body instead; each write() blocks the thread until the bytes are sent",
    ),
    "asgi-message": Rule(
        "error",
        "ASGI: every message is a dict with a 'type' the scope knows",
        "send {'type': 'http.response.start', ...} and {'type': 'http.response.body', ...}",
    ),
    "asgi-order": Rule(
        "error",
        "ASGI: http.response.start comes exactly once, before any http.response.body",
        "send the start message once, then the body",
    ),
    "asgi-status": Rule(
        "error",
        "ASGI: the status is an int from 200 to 599 (1xx cannot be sent)",
        "send 'status': 200, not '200 OK'",
    ),
    "asgi-headers": Rule(
        "error",
        "ASGI: headers are an iterable of [name, value] pairs of bytes",
        "send [(b'content-type', b'text/plain')]",
    ),
    "asgi-header-case": Rule(
        "error",
        "ASGI: response header names are lower-case",
        "send b'content-type', not b'Content-Type'",
    ),
    "asgi-body": Rule(
        "error",
        "ASGI: 'body' is bytes and 'more_body' a bool",
        "encode text before sending it: {'body': text.encode('utf-8')}",
    ),
    "asgi-after-end": Rule(
        "error",
        "ASGI: nothing is sent after the final http.response.body (more_body false)",
        "stop sending once the response is complete; run background work without send()",
    ),
    "asgi-incomplete": Rule(
        "error",
        "ASGI: the app completes the response (a final body with more_body false) before it returns",
        "send http.response.start and a last http.response.body before returning",
    ),
    "asgi-transfer-encoding": Rule(
        "warning",
        "ASGI: servers ignore a transfer-encoding header from the app",
        "remove it: the server decides how to frame the body",
    ),
    "lifespan": Rule(
        "error",
        "ASGI lifespan: startup completes (or the app raises to say it has no lifespan support)",
        "answer lifespan.startup with lifespan.startup.complete, or .failed with a message",
    ),
    "content-length": Rule(
        "error",
        "RFC 9110: the body is exactly as long as Content-Length says",
        "set Content-Length from the bytes you send, or leave it out and let the server frame the body",
    ),
    "no-body-status": Rule(
        "error",
        "RFC 9110: 1xx, 204 and 304 responses have no body",
        "send an empty body with these statuses",
    ),
    "app-error": Rule(
        "warning",
        "the app raised an exception (the server answers 500 and logs it)",
        "run the probe against the app directly to see the traceback (--verbose prints it)",
    ),
    "bridge-refused": Rule(
        "error",
        "bridge refused what the app sent",
        "the message names the rule that was broken",
    ),
    "timeout": Rule(
        "error",
        "the app answers within the probe's time limit",
        "the app may wait for a request body it never gets, or for itself; if it is slow, raise --timeout",
    ),
}


@dataclass(frozen=True)
class Probe:
    method: str
    path: str  # decoded path, as in an ASGI scope
    query: bytes = b""
    body: bytes = b""
    chunked: bool = False  # no Content-Length; the body arrives in two parts
    content_type: str | None = None

    def __str__(self) -> str:
        target = quote(self.path, safe="/%")
        if self.query:
            target += "?" + self.query.decode("latin-1")
        return f"{self.method} {target}{' (chunked)' if self.chunked else ''}"


@dataclass(frozen=True)
class Finding:
    rule: str
    probe: str
    message: str

    @property
    def severity(self) -> Severity:
        return RULES[self.rule].severity


@dataclass
class Outcome:
    probe: Probe
    status: int | None = None
    length: int = 0


@dataclass
class Report:
    interface: str
    outcomes: list[Outcome] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def render(self, *, verbose: bool = False) -> str:
        lines = []
        for outcome in self.outcomes:
            status = str(outcome.status) if outcome.status is not None else "---"
            lines.append(f"  {outcome.probe!s:<44} {status}  {outcome.length} bytes")
        for finding in self.findings:
            rule = RULES[finding.rule]
            lines.append(f"{finding.severity}: {finding.probe}: {finding.message}")
            lines.append(f"  rule: {rule.title} [{finding.rule}]")
            lines.append(f"  hint: {rule.hint}")
        if verbose:
            lines.extend(self.tracebacks)
        errors, warnings = len(self.errors), len(self.warnings)
        summary = f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
        lines.append(f"{summary} in {len(self.outcomes)} probes")
        return "\n".join(lines)


def default_probes(paths: Sequence[str] = ("/",)) -> list[Probe]:
    """What a real client sends: reads, a HEAD, a query, a form post, a chunked JSON post."""
    probes = []
    for path in paths:
        probes += [
            Probe("GET", path),
            Probe("HEAD", path),
            Probe("GET", path, query=b"q=caf%C3%A9&page=2"),
            Probe("POST", path, body=b"name=caf%C3%A9&n=1", content_type="application/x-www-form-urlencoded"),
            Probe("POST", path, body=b'{"probe": true}', chunked=True, content_type="application/json"),
            Probe("OPTIONS", path),
        ]
    probes.append(Probe("GET", "/bridge-check/not-found/café"))
    return probes


def check_app(loaded: Loaded, probes: Sequence[Probe], *, timeout: float = 10.0) -> Report:
    """Run every probe through the adapter the app needs and collect what it breaks."""
    app = loaded.app
    # An adapter the module built already: check the app inside it.
    if isinstance(app, WsgiToAsgi):
        report = Report("wsgi")
        _check_wsgi(app.wsgi_app, probes, report, timeout)
    elif isinstance(app, AsgiToWsgi):
        report = Report("asgi")
        _check_asgi(app.app, probes, report, timeout)
    elif loaded.detection.interface == "wsgi":
        report = Report("wsgi")
        _check_wsgi(app, probes, report, timeout)  # type: ignore[arg-type]
    else:
        report = Report("asgi")
        _check_asgi(guarantee_single_callable(app), probes, report, timeout)  # type: ignore[no-untyped-call]
    return report


# -- common bookkeeping ---------------------------------------------------------------------


class _Recorder:
    """Findings of one probe; the adapter's own refusal counts only if the inspector saw nothing."""

    def __init__(self, report: Report, probe: Probe, label: str = "") -> None:
        self.report = report
        self.probe = label or str(probe)
        self.outcome = Outcome(probe)
        self.count = 0

    def add(self, rule: str, message: str, probe: str = "") -> None:
        finding = Finding(rule, probe or self.probe, message)
        if finding not in self.report.findings:
            self.report.findings.append(finding)
            self.count += 1

    def failed(self, exc: BaseException) -> None:
        if isinstance(exc, LifespanError):
            self.add("lifespan", str(exc), probe="lifespan")  # once, not once per probe
            return
        if isinstance(exc, BridgeError):
            if not self.count:
                self.add("bridge-refused", f"{type(exc).__name__}: {exc}")
            return
        self.add("app-error", f"{type(exc).__name__}: {exc}")
        trace = traceback.format_exception(type(exc), exc, exc.__traceback__)
        self.report.tracebacks.append(f"{self.probe}:\n" + "".join(trace))

    def body_done(self, status: int | None, length: int, content_length: int | None, head: bool) -> None:
        if status is not None and (status < 200 or status in (204, 304)) and length:
            self.add("no-body-status", f"a {status} response carried a {length}-byte body")
        elif content_length is not None and length != content_length and not (head and length == 0):
            self.add("content-length", f"Content-Length says {content_length}, the body had {length} bytes")


def _scope(probe: Probe) -> Scope:
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bridge-check")]
    if probe.content_type:
        headers.append((b"content-type", probe.content_type.encode("latin-1")))
    if probe.body and not probe.chunked:
        headers.append((b"content-length", str(len(probe.body)).encode("ascii")))
    elif probe.chunked:
        headers.append((b"transfer-encoding", b"chunked"))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": probe.method,
        "scheme": "http",
        "path": probe.path,
        "raw_path": quote(probe.path, safe="/").encode("ascii"),
        "query_string": probe.query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


def _body_parts(probe: Probe) -> list[bytes]:
    if probe.chunked and len(probe.body) > 1:
        half = len(probe.body) // 2
        return [probe.body[:half], probe.body[half:]]
    return [probe.body]


# -- WSGI apps: WsgiToAsgi in front, the inspector behind it --------------------------------


def _check_wsgi(app: WSGIApp, probes: Sequence[Probe], report: Report, timeout: float) -> None:
    inspector = _WsgiInspector(app)
    adapter = WsgiToAsgi(inspector, strict=True)

    async def run_all() -> None:
        for probe in probes:
            inspector.recorder = recorder = _Recorder(report, probe)
            await _drive_asgi(adapter, probe, recorder, timeout)
            report.outcomes.append(recorder.outcome)

    anyio.run(run_all)


async def _drive_asgi(app: ASGIApp, probe: Probe, recorder: _Recorder, timeout: float) -> None:
    """Play an ASGI server for one request."""
    parts = _body_parts(probe)
    done = anyio.Event()

    async def receive() -> Message:
        if parts:
            body = parts.pop(0)
            return {"type": "http.request", "body": body, "more_body": bool(parts)}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            recorder.outcome.status = message["status"]
        elif message["type"] == "http.response.body":
            recorder.outcome.length += len(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    try:
        with anyio.fail_after(timeout):
            await app(_scope(probe), receive, send)
    except TimeoutError:
        recorder.add("timeout", f"no complete response within {timeout:g} s")
    except Exception as exc:
        recorder.failed(exc)
    finally:
        done.set()


class _WsgiInspector:
    """Watches each call of the app; ``recorder`` is the probe being run."""

    recorder: _Recorder

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        state = _WsgiResponse(self.recorder, start_response, environ["REQUEST_METHOD"] == "HEAD")
        result: Any = self.app(environ, state.start_response)
        if result is None or isinstance(result, (bytes, str, bytearray)):
            self.recorder.add("wsgi-iterable", f"the app returned a {type(result).__name__}")
            if isinstance(result, (bytes, bytearray)):
                result = [bytes(result)]  # let the probe go on, to find more
        return state.watch(result)


class _WsgiResponse:
    def __init__(self, recorder: _Recorder, start_response: StartResponse, head: bool) -> None:
        self.recorder = recorder
        self.inner = start_response
        self.head = head
        self.calls = 0
        self.status: int | None = None
        self.content_length: int | None = None
        self.length = 0
        self.body_started = False

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None, /
    ) -> Callable[[bytes], object]:
        self.calls += 1
        if self.calls > 1 and exc_info is None:
            self.recorder.add(
                "wsgi-start-twice", f"start_response was called {self.calls} times without exc_info"
            )
        try:
            self.status = parse_status(status)
        except ResponseError as exc:
            self.recorder.add("wsgi-status", str(exc))
        try:
            self.content_length = encode_response_headers(headers, strict=True).content_length
        except HopByHopHeaderError:
            names = [
                item[0] for item in headers if isinstance(item, tuple) and str(item[0]).lower() in HOP_BY_HOP
            ]
            self.recorder.add("wsgi-hop-by-hop", f"the app set {', '.join(map(repr, names))}")
        except ResponseError as exc:
            self.recorder.add("wsgi-headers", str(exc))
        write = self.inner(status, headers, exc_info)

        def checked_write(data: bytes) -> object:
            self.recorder.add("wsgi-write", "the app called write()")
            self._chunk(data)
            return write(data)

        return checked_write

    def _chunk(self, chunk: object) -> None:
        if not isinstance(chunk, bytes):
            self.recorder.add("wsgi-chunk-type", f"the body had a {type(chunk).__name__}: {chunk!r:.60}")
            return
        if chunk and not self.calls:
            self.recorder.add("wsgi-no-start", "the first body bytes came before start_response")
        self.length += len(chunk)

    def watch(self, result: Iterable[bytes]) -> Iterable[bytes]:
        return _WatchedIterable(self, result)


class _WatchedIterable:
    def __init__(self, state: _WsgiResponse, result: Iterable[bytes]) -> None:
        self.state = state
        self.result = result

    def __iter__(self) -> Iterator[bytes]:
        state = self.state
        for chunk in self.result:
            state._chunk(chunk)
            yield chunk
        if not state.calls:
            state.recorder.add("wsgi-no-start", "the app never called start_response")
        state.recorder.body_done(state.status, state.length, state.content_length, state.head)

    def close(self) -> None:
        close = getattr(self.result, "close", None)
        if close is not None:
            close()


# -- ASGI apps: AsgiToWsgi in front, the inspector behind it --------------------------------


def _check_asgi(app: ASGIApp, probes: Sequence[Probe], report: Report, timeout: float) -> None:
    inspector = _AsgiInspector(app, _Recorder(report, Probe("", ""), "lifespan"))
    adapter = AsgiToWsgi(inspector, lifespan="auto", startup_timeout=timeout, shutdown_timeout=timeout)
    try:
        for probe in probes:
            recorder = _Recorder(report, probe)
            inspector.recorder = recorder
            _drive_wsgi(adapter, probe, recorder, timeout)
            report.outcomes.append(recorder.outcome)
    finally:
        adapter.close()


def _drive_wsgi(app: AsgiToWsgi, probe: Probe, recorder: _Recorder, timeout: float) -> None:
    """Play a WSGI server for one request, in a thread so that a hung app cannot hang us."""
    environ = build_environ(_scope(probe), errors=ErrorStream())
    environ["wsgi.input"] = io.BytesIO(probe.body)
    if probe.chunked:
        environ["wsgi.input_terminated"] = True

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None) -> Any:
        recorder.outcome.status = int(status[:3])  # the inspector checks the rest
        return lambda data: None

    def run() -> None:
        try:
            result = app(environ, start_response)
            try:
                for chunk in result:
                    recorder.outcome.length += len(chunk)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception as exc:
            recorder.failed(exc)

    thread = threading.Thread(target=run, name=f"bridge check {probe}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        recorder.add("timeout", f"no complete response within {timeout:g} s")


class _AsgiInspector:
    """Watches the messages of each scope; ``recorder`` is the probe being run."""

    recorder: _Recorder

    def __init__(self, app: ASGIApp, lifespan: _Recorder) -> None:
        self.app = app
        self.lifespan = lifespan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, _LifespanWatcher(self.lifespan, send))
            return
        watcher = _AsgiResponse(self.recorder, send, scope["method"] == "HEAD")
        await self.app(scope, receive, watcher)
        watcher.returned()


class _LifespanWatcher:
    def __init__(self, recorder: _Recorder, send: Send) -> None:
        self.recorder = recorder
        self.send = send

    async def __call__(self, message: Message) -> None:
        kind = message.get("type") if isinstance(message, dict) else None
        if kind not in (
            "lifespan.startup.complete",
            "lifespan.startup.failed",
            "lifespan.shutdown.complete",
            "lifespan.shutdown.failed",
        ):
            self.recorder.add("asgi-message", f"the lifespan scope got a {kind!r} message")
        elif kind.endswith(".failed"):
            self.recorder.add("lifespan", f"{kind}: {message.get('message', '')!r}")
        await self.send(message)


class _AsgiResponse:
    def __init__(self, recorder: _Recorder, send: Send, head: bool) -> None:
        self.recorder = recorder
        self.send = send
        self.head = head
        self.status: int | None = None
        self.content_length: int | None = None
        self.length = 0
        self.ended = False

    async def __call__(self, message: Message) -> None:
        self._inspect(message)
        await self.send(message)

    def _inspect(self, message: Message) -> None:
        add = self.recorder.add
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            add("asgi-message", f"send() got {message!r:.80}")
            return
        kind = message["type"]
        if self.ended:
            add("asgi-after-end", f"the app sent {kind} after the response was complete")
        if kind == "http.response.start":
            if self.status is not None:
                add("asgi-order", "http.response.start was sent twice")
            self._start(message)
        elif kind == "http.response.body":
            if self.status is None:
                add("asgi-order", "http.response.body came before http.response.start")
            body, more = message.get("body", b""), message.get("more_body", False)
            if not isinstance(body, bytes):
                add("asgi-body", f"'body' is a {type(body).__name__}")
            else:
                self.length += len(body)
            if not isinstance(more, bool):
                add("asgi-body", f"'more_body' is a {type(more).__name__}")
            if not more:
                self.ended = True
                self.recorder.body_done(self.status, self.length, self.content_length, self.head)
        else:
            add("asgi-message", f"{kind!r} is not a message of an http scope")

    def _start(self, message: Message) -> None:
        add = self.recorder.add
        status = message.get("status")
        try:
            parse_asgi_status(status)
            self.status = status
        except ResponseError as exc:
            add("asgi-status", str(exc))
            self.status = 0
        headers = message.get("headers", [])
        try:
            decode_asgi_headers(headers)
        except ResponseError as exc:
            add("asgi-headers", str(exc))
            return
        except (TypeError, ValueError) as exc:
            add("asgi-headers", f"{type(exc).__name__}: {exc}")
            return
        for name, value in headers:
            if name != name.lower():
                add("asgi-header-case", f"header name {bytes(name)!r}")
            if name.lower() == b"transfer-encoding":
                add("asgi-transfer-encoding", f"transfer-encoding: {bytes(value)!r}")
            if name.lower() == b"content-length" and bytes(value).isdigit():
                self.content_length = int(value)

    def returned(self) -> None:
        if not self.ended:
            sent = "http.response.start only" if self.status is not None else "nothing"
            self.recorder.add("asgi-incomplete", f"the app returned having sent {sent}")
