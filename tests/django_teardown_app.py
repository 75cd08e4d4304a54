"""Django's ASGI handler under AsgiToWsgi, served request after request on one thread
the way a sync WSGI worker serves them, with the request signals recorded.

Run as ``python -m tests.django_teardown_app REQUESTS TEARDOWN_WAIT|default``: prints the
signal events as JSON lines. In a process of its own, since Django is configured once
per process.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TypedDict

from tests.matrix.apps.django_settings import configure

configure(__name__)

from django.core.asgi import get_asgi_application  # noqa: E402 (after configure)
from django.core.signals import request_finished, request_started  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

from bridge import AsgiToWsgi  # noqa: E402
from tests.asgi_apps import call  # noqa: E402

events: list[str] = []
lock = threading.Lock()


def started(**kwargs: Any) -> None:
    with lock:
        events.append("started")


def finished(**kwargs: Any) -> None:
    time.sleep(0.02)  # closing database connections, say
    with lock:
        events.append("finished")


request_started.connect(started)
request_finished.connect(finished)


async def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [path("", index)]


class Options(TypedDict, total=False):
    teardown_wait: float


def main() -> None:
    count = int(sys.argv[1])
    options: Options = {} if sys.argv[2] == "default" else {"teardown_wait": float(sys.argv[2])}
    adapter = AsgiToWsgi(get_asgi_application(), lifespan="off", **options)
    try:
        for _ in range(count):
            assert call(adapter).body == b"ok"
        # With teardown_wait 0 the last teardown may still run: let it end (bounded) before
        # close() stops the loop under it, so that the order, not the exit, is what is seen.
        deadline = time.monotonic() + 5.0
        while events.count("finished") < count and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        adapter.close()
    print(json.dumps(events))


if __name__ == "__main__":
    main()
