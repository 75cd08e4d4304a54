"""HEAD on a streaming endpoint that never ends (server-sent events, a live feed).

A native ASGI server answers at ``http.response.start``: the status and headers go out at
once and the body is dropped. Through the bridge, WSGI needs ``start_response`` and the
first non-empty body chunk; for HEAD every chunk is emptied, so the bridge should not wait
for the end of a body nobody will read. The WSGI server cannot notice the client leaving
either (it never writes), so a request that waits here ties up a worker thread for good.

Each server is started for one test (function scope) with a short gunicorn graceful
timeout, so a hung request costs seconds rather than the module.
"""

from __future__ import annotations

import time
from typing import Callable

import httpx
import pytest

from .conftest import Server, ServerSpec

pytestmark = pytest.mark.integration

SPECS = [
    ServerSpec("gunicorn-sync", workers=1, graceful_timeout=2, backend="asyncio"),
    ServerSpec("waitress", threads=2, backend="trio"),
    ServerSpec("werkzeug", backend="asyncio"),
]
#: Generous: a native ASGI server answers in milliseconds.
HEAD_TIMEOUT = 3.0


@pytest.mark.parametrize("spec", SPECS, ids=[spec.id for spec in SPECS])
def test_head_on_an_endless_stream_answers(
    server_factory: Callable[[ServerSpec], Server], spec: ServerSpec
) -> None:
    server = server_factory(spec)
    with server.client() as client:
        get_headers = None
        with client.stream("GET", "/head-endless") as response:  # GET streams, as a baseline
            assert response.status_code == 200
            get_headers = response.headers
            next(response.iter_raw())
        started = time.monotonic()
        try:
            response = client.head("/head-endless", timeout=HEAD_TIMEOUT)
        except httpx.TimeoutException:
            pytest.fail(
                f"HEAD on an endless StreamingResponse got no response within {HEAD_TIMEOUT} s "
                f"through {spec.id} (GET answers at once)"
            )
        print(f"\n[head endless {spec.id}] answered in {time.monotonic() - started:.3f} s")
    assert response.status_code == 200
    assert response.headers["content-type"] == get_headers["content-type"]
    assert response.content == b""
