"""``test_disconnect_unread_body``'s dropped streams, with every request body streamed to
``wsgi.input`` (``preload_body=0, spool_body=0``): the body, a chunked one still
arriving, sits unread behind ``wsgi.input`` while the app streams its response.
"""

from __future__ import annotations

import pytest

from .servers import Server, stop_and_check_log
from .test_disconnect_unread_body import FORBIDDEN_IN_LOG, check_dropped_stream_is_closed

APP = "tests.integration_wsgi_apps.apps.lifecycle:asgi_streamed"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(40)]

# Known limit: past about 1 MiB unread, a streamed body is no longer taken in (memory
# stays bounded), so the bridge no longer calls receive() and cannot see the disconnect
# behind the body; uvicorn and hypercorn keep send() silent then (spec < 2.4). Received
# ahead (the default, up to spool_body), such a body hides nothing.
_OVER_WATCH_BUFFER = pytest.mark.xfail(
    strict=True,
    reason="an unread streamed body past the 1 MiB watch buffer hides a later disconnect (spec < 2.4)",
)


@pytest.mark.parametrize(
    "body", ["unread-256KiB", pytest.param("unread-2MiB", marks=_OVER_WATCH_BUFFER), "unfinished-chunked"]
)
def test_dropped_stream_with_unread_streamed_request_body_is_closed(server: Server, body: str) -> None:
    check_dropped_stream_is_closed(server, body)


def test_zz_server_log_is_clean(server: Server) -> None:
    stop_and_check_log(server, FORBIDDEN_IN_LOG)
