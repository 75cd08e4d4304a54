"""The response rules of PEP 3333 and ASGI, once: ids, what the spec says, what to do.

The response state machines (:mod:`bridge.wsgi_response`, :mod:`bridge.asgi_response`)
name one of these ids in every :class:`~bridge.errors.ResponseError` they raise, and
``bridge check`` reports its findings by the same ids, from the same machines run in
recording mode. So a rule is written here and nowhere else; the machines decide when
it is broken.

Pure: no threads, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["RULES", "Rule", "Severity"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Rule:
    """One rule: ``severity`` as ``bridge check`` reports it, ``title`` what the spec
    says, ``hint`` what the app's author can do about it."""

    severity: Severity
    title: str
    hint: str


#: Every rule, by id.
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
    "asgi-pathsend": Rule(
        "error",
        "ASGI: a Path Send path is absolute, and the message is not mixed with http.response.body",
        "send {'type': 'http.response.pathsend', 'path': str(path.resolve())} alone after the start",
    ),
    "asgi-order": Rule(
        "error",
        "ASGI: http.response.start comes exactly once, before any http.response.body",
        "send the start message once, then the body",
    ),
    "asgi-status": Rule(
        "error",
        "ASGI: the status is an int of three digits, 200 or more (1xx cannot be sent through WSGI)",
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
        "error",
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
