"""The requests every matrix cell must answer (the behaviour in ``apps/common.py``).

Each check says which request it made and what came back, so a failing cell reads as
"GET /stream: expected ..., got ...". One ``httpx.Client`` per cell: requests reuse the
connection where the server keeps it alive (wsgiref answers in HTTP/1.0 and closes).
"""

from __future__ import annotations

import hashlib
import random
from typing import Callable
from urllib.parse import urljoin

import httpx

from tests.matrix.apps.common import (
    COOKIES,
    CUSTOM_HEADER,
    REDIRECT_TARGET,
    STREAM_CHUNKS,
    TARGET_TEXT,
    hello,
)
from tests.servers import CLIENT_TIMEOUT

#: The upload of ``POST /echo``: large enough to span many reads and socket buffers.
UPLOAD_SIZE = 100 * 1024
QUERY_VALUE = "café ünïcødé & = + /"


def describe(response: httpx.Response, limit: int = 300) -> str:
    body = response.content
    shown = body[:limit].decode("utf-8", "replace") + (
        f"... ({len(body)} bytes)" if len(body) > limit else ""
    )
    return f"{response.status_code} {dict(response.headers)!r} body {shown!r}"


def expect(condition: bool, request: str, expected: str, response: httpx.Response) -> None:
    if not condition:
        raise AssertionError(f"{request}: expected {expected}, got {describe(response)}")


def check_index(client: httpx.Client, framework: str) -> None:
    response = client.get("/")
    what = "GET /"
    expect(response.status_code == 200, what, "200", response)
    expect(response.text == hello(framework), what, f"body {hello(framework)!r}", response)
    content_type = response.headers.get("content-type", "")
    expect(content_type.startswith("text/plain"), what, "a text/plain content-type", response)


def check_query(client: httpx.Client, framework: str) -> None:
    response = client.get("/echo-query", params={"q": QUERY_VALUE})
    what = f"GET {response.request.url.raw_path.decode('ascii')}"
    expect(response.status_code == 200, what, "200", response)
    expect(response.content == QUERY_VALUE.encode(), what, f"the UTF-8 body {QUERY_VALUE!r}", response)


def check_echo(client: httpx.Client, framework: str) -> None:
    body = random.Random(UPLOAD_SIZE).randbytes(UPLOAD_SIZE)
    response = client.post("/echo", content=body, headers={"content-type": "application/octet-stream"})
    what = f"POST /echo with {len(body)} bytes"
    expect(response.status_code == 200, what, "200", response)
    got, want = hashlib.sha256(response.content).hexdigest(), hashlib.sha256(body).hexdigest()
    expect(
        got == want,
        what,
        f"the same {len(body)} bytes back (sha256 {want[:16]}..., got {len(response.content)} bytes, "
        f"sha256 {got[:16]}...)",
        response,
    )


def check_stream(client: httpx.Client, framework: str) -> None:
    expected = b"".join(STREAM_CHUNKS)
    with client.stream("GET", "/stream") as response:
        received = b"".join(response.iter_bytes())
    what = "GET /stream"
    expect(response.status_code == 200, what, "200", response)
    if received != expected:
        raise AssertionError(
            f"{what}: expected {len(STREAM_CHUNKS)} chunks, {len(expected)} bytes; got {len(received)} "
            f"bytes starting {received[:80]!r}, headers {dict(response.headers)!r}"
        )


def check_cookie(client: httpx.Client, framework: str) -> None:
    response = client.get("/cookie")
    what = "GET /cookie"
    expect(response.status_code == 200, what, "200", response)
    set_cookies = response.headers.get_list("set-cookie")
    for name, value in COOKIES:
        expect(
            any(header.startswith(f"{name}={value}") for header in set_cookies),
            what,
            f"a Set-Cookie header {name}={value} (one header per cookie)",
            response,
        )
    header, value = CUSTOM_HEADER
    expect(response.headers.get(header) == value, what, f"header {header}: {value}", response)


def check_redirect(client: httpx.Client, framework: str) -> None:
    response = client.get("/redirect")
    what = "GET /redirect"
    expect(response.status_code == 302, what, "302", response)
    location = response.headers.get("location", "")
    wanted = str(client.base_url.join(REDIRECT_TARGET))
    expect(
        urljoin(str(response.url), location) == wanted,
        what,
        f"a Location that resolves to {wanted}",
        response,
    )
    followed = client.get(urljoin(str(response.url), location))
    expect(followed.text == TARGET_TEXT, f"GET {location}", f"body {TARGET_TEXT!r}", followed)


def check_not_found(client: httpx.Client, framework: str) -> None:
    response = client.get("/no/such/path")
    expect(response.status_code == 404, "GET /no/such/path", "404", response)


CHECKS: tuple[Callable[[httpx.Client, str], None], ...] = (
    check_index,
    check_query,
    check_echo,
    check_stream,
    check_cookie,
    check_redirect,
    check_not_found,
)


def check_app(base_url: str, framework: str) -> None:
    """Run every check against the server at ``base_url`` serving ``framework``'s app."""
    with httpx.Client(base_url=base_url, timeout=CLIENT_TIMEOUT, follow_redirects=False) as client:
        for check in CHECKS:
            check(client, framework)
