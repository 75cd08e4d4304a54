"""The bundled examples work through the adapter (in memory; real servers elsewhere)."""

from __future__ import annotations

import json

import pytest

from tests.asgi_driver import Client, http_scope, request

pytestmark = pytest.mark.anyio


async def test_flask_hello() -> None:
    from examples.flask_hello import app

    result = await request(app, "/")
    assert result.status == 200
    assert result.body == b"Hello from Flask, served through bridge.WsgiToAsgi!\n"

    result = await Client([b"abc", b"def"]).run(
        app, http_scope("/echo", method="POST", headers=[(b"host", b"x"), (b"content-type", b"text/plain")])
    )
    assert result.body == b"abcdef"

    result = await request(app, "/stream", query_string=b"n=3")
    assert result.body == b"line 0\nline 1\nline 2\n"
    assert len([m for m in result.bodies if m["body"]]) == 3

    first = await request(app, "/visits")
    cookie = first.header(b"set-cookie")
    assert cookie is not None
    second = await request(app, "/visits", headers=[(b"host", b"x"), (b"cookie", cookie.split(b";")[0])])
    assert json.loads(second.body) == {"visits": 2}
