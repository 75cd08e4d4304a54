"""Django's ASGI handler (async views), served by WSGI servers through ``AsgiToWsgi``.

Django's handler refuses the lifespan protocol, so this cell also checks that
``lifespan="auto"`` (the default) goes on without it.
"""

from __future__ import annotations

from typing import AsyncIterator

from tests.matrix.apps.django_settings import configure

configure(__name__)

from django.core.asgi import get_asgi_application  # noqa: E402 (after configure)
from django.http import (  # noqa: E402
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.urls import path  # noqa: E402

from bridge import AsgiToWsgi  # noqa: E402
from tests.matrix.apps.common import (  # noqa: E402
    COOKIES,
    CUSTOM_HEADER,
    REDIRECT_TARGET,
    STREAM_CHUNKS,
    TARGET_TEXT,
    backend,
    hello,
)


async def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse(hello("django-asgi"), content_type="text/plain")


async def echo_query(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.GET.get("q", ""), content_type="text/plain; charset=utf-8")


async def echo(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.body, content_type="application/octet-stream")


async def stream(request: HttpRequest) -> StreamingHttpResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for chunk in STREAM_CHUNKS:
            yield chunk

    return StreamingHttpResponse(chunks(), content_type="text/plain")


async def cookie(request: HttpRequest) -> HttpResponse:
    response = HttpResponse("cookies", content_type="text/plain")
    for name, value in COOKIES:
        response.set_cookie(name, value)
    response[CUSTOM_HEADER[0]] = CUSTOM_HEADER[1]
    return response


async def to_target(request: HttpRequest) -> HttpResponse:
    return HttpResponseRedirect(REDIRECT_TARGET)


async def target(request: HttpRequest) -> HttpResponse:
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

app = AsgiToWsgi(get_asgi_application(), backend=backend())
