"""``bridge check``: send probe requests through the adapter in-process and report the
protocol rules the app breaks (PEP 3333 or ASGI), each with the rule and a hint.

An inspector sits between the adapter and the app and watches every call the app
makes: ``start_response`` and the iterable on the WSGI side, each message on the ASGI
side. It only records; the app's calls go through unchanged, so what the adapter
itself refuses is seen as well.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence
from urllib.parse import quote

import anyio
from asgiref.compatibility import guarantee_single_callable

from .._types import ASGIApp, Environ, ExcInfo, Message, Receive, Scope, Send, StartResponse, WSGIApp
from ..asgi_response import AsgiResponse
from ..asgi_to_wsgi import AsgiToWsgi
from ..environ import build_environ
from ..errors import BridgeError, LifespanError, ResponseError
from ..rules import RULES, Severity
from ..wsgi_response import WsgiResponse
from ..wsgi_streams import ErrorStream
from ..wsgi_to_asgi import WsgiToAsgi
from .load import Loaded

__all__ = ["Finding", "Probe", "Report", "RULES", "check_app", "default_probes"]


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

    def line(self) -> str:
        status = str(self.status) if self.status is not None else "---"
        return f"  {self.probe!s:<44} {status}  {self.length} bytes"


@dataclass
class Report:
    interface: str
    outcomes: list[Outcome] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)
    on_outcome: Callable[[Outcome], object] = field(default=lambda outcome: None, repr=False)

    def add_outcome(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.on_outcome(outcome)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def render(self, *, verbose: bool = False, outcomes: bool = True) -> str:
        """The report; ``outcomes=False`` leaves out the probes' lines (printed as they ran)."""
        lines = [outcome.line() for outcome in self.outcomes] if outcomes else []
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


def check_app(
    loaded: Loaded,
    probes: Sequence[Probe],
    *,
    timeout: float = 10.0,
    on_outcome: Callable[[Outcome], object] | None = None,
) -> Report:
    """Run every probe through the adapter the app needs and collect what it breaks.

    Each probe takes at most ``timeout`` seconds: one the app does not answer in time is
    reported and left behind (its thread is a daemon), not waited for. ``on_outcome`` is
    called with each probe's outcome as soon as it is known.
    """
    app = loaded.app
    wsgi = isinstance(app, WsgiToAsgi) or (
        not isinstance(app, AsgiToWsgi) and loaded.detection.interface == "wsgi"
    )
    report = Report("wsgi" if wsgi else "asgi")
    if on_outcome is not None:
        report.on_outcome = on_outcome
    # An adapter the module built already: check the app inside it.
    if isinstance(app, WsgiToAsgi):
        _check_wsgi(app.wsgi_app, probes, report, timeout)
    elif isinstance(app, AsgiToWsgi):
        _check_asgi(app.app, probes, report, timeout)
    elif wsgi:
        _check_wsgi(app, probes, report, timeout)  # type: ignore[arg-type]
    else:
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
        #: Set when the probe timed out: what its abandoned app does later is not reported.
        self.closed = False

    def add(self, rule: str, message: str, probe: str = "") -> None:
        if self.closed:
            return
        finding = Finding(rule, probe or self.probe, message)
        if finding not in self.report.findings:
            self.report.findings.append(finding)
            self.count += 1

    def give_up(self, timeout: float) -> None:
        """The probe timed out: report it, and nothing its app does from now on."""
        self.add("timeout", f"no complete response within {timeout:g} s")
        self.closed = True
        self.outcome = dataclasses.replace(self.outcome)  # the abandoned app keeps the old one

    def failed(self, exc: BaseException) -> None:
        if self.closed:
            return
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
    for probe in probes:
        recorder = _Recorder(report, probe)
        adapter = WsgiToAsgi(_WsgiInspector(app, recorder), strict=True)
        # Each probe on an event loop of its own, in a daemon thread: a probe the app does
        # not answer in time is left behind as it is. (Cancelling it would make WsgiToAsgi
        # wait, rightly for a server, for the app's thread to give the request up.)
        done = threading.Event()
        thread = threading.Thread(
            target=_run_loop, args=(adapter, probe, recorder, done), name=f"bridge check {probe}", daemon=True
        )
        thread.start()
        if not done.wait(timeout):
            recorder.give_up(timeout)
        report.add_outcome(recorder.outcome)


def _run_loop(app: ASGIApp, probe: Probe, recorder: _Recorder, done: threading.Event) -> None:
    try:
        anyio.run(_drive_asgi, app, probe, recorder)
    finally:
        done.set()


async def _drive_asgi(app: ASGIApp, probe: Probe, recorder: _Recorder) -> None:
    """Play an ASGI server for one request."""
    outcome = recorder.outcome  # (kept: a probe that timed out reports a copy)
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
            outcome.status = message["status"]
        elif message["type"] == "http.response.body":
            outcome.length += len(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    try:
        await app(_scope(probe), receive, send)
    except Exception as exc:
        recorder.failed(exc)
    finally:
        done.set()


class _WsgiInspector:
    """Watches each call of the app through a PEP 3333 response machine in recording
    mode; ``recorder`` is the probe being run."""

    def __init__(self, app: WSGIApp, recorder: _Recorder) -> None:
        self.app = app
        self.recorder = recorder

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        recorder = self.recorder
        machine = WsgiResponse(environ["REQUEST_METHOD"], record=recorder.add)

        def watched_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None, /
        ) -> Callable[[bytes], object]:
            if type(status) is str and len(status.strip()) == 3 and status[:3].isdigit():
                # Servers (and WsgiToAsgi) take it, but PEP 3333 wants the reason phrase.
                recorder.add("wsgi-status", f"the status {status!r} has no reason phrase, like '200 OK'")
            machine.start(status, headers, exc_info)
            write = start_response(status, headers, exc_info)

            def watched_write(data: bytes) -> object:
                machine.write(data)
                return write(data)

            return watched_write

        result: Any = self.app(environ, watched_start_response)
        machine.returned(result)
        if isinstance(result, (bytes, bytearray)):
            result = [bytes(result)]  # let the probe go on, to find more
        return _WatchedIterable(machine, result)


class _WatchedIterable:
    def __init__(self, machine: WsgiResponse, result: Iterable[bytes]) -> None:
        self.machine = machine
        self.result = result

    def __iter__(self) -> Iterator[bytes]:
        machine = self.machine
        for chunk in self.result:
            machine.body(chunk)
            yield chunk
        machine.finish()

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
            report.add_outcome(recorder.outcome)
    finally:
        adapter.close()


def _drive_wsgi(app: AsgiToWsgi, probe: Probe, recorder: _Recorder, timeout: float) -> None:
    """Play a WSGI server for one request, in a thread so that a hung app cannot hang us."""
    outcome = recorder.outcome  # (kept: a probe that timed out reports a copy)
    environ = build_environ(_scope(probe), errors=ErrorStream())
    environ["wsgi.input"] = io.BytesIO(probe.body)
    if probe.chunked:
        environ["wsgi.input_terminated"] = True

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None) -> Any:
        outcome.status = int(status[:3])  # the inspector checks the rest
        return lambda data: None

    def run() -> None:
        try:
            result = app(environ, start_response)
            try:
                for chunk in result:
                    outcome.length += len(chunk)
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
        recorder.give_up(timeout)


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
    """Watches one response's messages through the ASGI response machine in recording mode."""

    def __init__(self, recorder: _Recorder, send: Send, head: bool) -> None:
        self.send = send
        self.recorder = recorder
        self.machine = AsgiResponse(head=head, record=self.record)
        self.bodies = 0  # http.response.body messages sent, and their bytes
        self.length = 0

    def record(self, rule: str, message: str) -> None:
        if rule == "asgi-incomplete" and self.bodies:
            # Say what was really sent: bodies, but never a final one.
            message = (
                f"the app returned after http.response.start and {self.bodies} http.response.body "
                f"message{'s' * (self.bodies != 1)} ({self.length} byte{'s' * (self.length != 1)}), "
                f"each with more_body true: the final body never came"
            )
        self.recorder.add(rule, message)

    async def __call__(self, message: Message) -> None:
        if isinstance(message, dict) and message.get("type") == "http.response.body":
            body = message.get("body", b"")
            self.bodies += 1
            self.length += len(body) if isinstance(body, (bytes, bytearray)) else 0
        with contextlib.suppress(ResponseError):  # recorded; the adapter refuses it itself
            self.machine.send(message)
        await self.send(message)

    def returned(self) -> None:
        with contextlib.suppress(ResponseError):
            self.machine.returned()
