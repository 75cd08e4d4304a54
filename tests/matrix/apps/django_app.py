"""Django's WSGI handler, served by ASGI servers through ``WsgiToAsgi``."""

from __future__ import annotations

from typing import Iterator

from tests.matrix.apps.django_settings import configure

configure(__name__)

from django.core.wsgi import get_wsgi_application  # noqa: E402 (after configure)
from django.http import (  # noqa: E402
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.urls import path  # noqa: E402

from bridge import WsgiToAsgi  # noqa: E402
from tests.matrix.apps.common import (  # noqa: E402
    COOKIES,
    CUSTOM_HEADER,
    REDIRECT_TARGET,
    STREAM_CHUNKS,
    TARGET_TEXT,
    hello,
)


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse(hello("django"), content_type="text/plain")


def echo_query(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.GET.get("q", ""), content_type="text/plain; charset=utf-8")


def echo(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.body, content_type="application/octet-stream")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def chunks() -> Iterator[bytes]:
        yield from STREAM_CHUNKS

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def cookie(request: HttpRequest) -> HttpResponse:
    response = HttpResponse("cookies", content_type="text/plain")
    for name, value in COOKIES:
        response.set_cookie(name, value)
    response[CUSTOM_HEADER[0]] = CUSTOM_HEADER[1]
    return response


def to_target(request: HttpRequest) -> HttpResponse:
    return HttpResponseRedirect(REDIRECT_TARGET)


def target(request: HttpRequest) -> HttpResponse:
    return HttpResponse(TARGET_TEXT, content_type="text/plain")


urlpatterns = [
    path("", index),
    path("echo-query", echo_query),
    path("echo", echo),
    path("stream", stream),
    path("cookie", cookie),
    path("redirect", to_target),
    path(REDIRECT_TARGET.lstrip("/"), target),
]

app = WsgiToAsgi(get_wsgi_application())
