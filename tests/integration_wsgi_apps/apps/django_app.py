"""A Django app, configured in code, served through the bridge:
``tests.integration_wsgi_apps.apps.django_app:asgi``.

No project directory and no database: sessions use the signed-cookie backend. A
receiver on ``request_finished`` counts finished requests; Django sends that signal
from the response's ``close()``, so the count shows that the bridge closed every
response (``request_started`` is counted too, to know when all are done). The counts
are served by a plain WSGI wrapper around Django, so reading it
does not change it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any, Iterable, Iterator, cast

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="bridge-integration-tests-not-secret",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["*"],
    INSTALLED_APPS=[],
    DATABASES={},
    MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
    SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
    USE_TZ=True,
    # Uploads above 1 MiB go to a temporary file: the streamed path of Django's parser.
    FILE_UPLOAD_MAX_MEMORY_SIZE=1024 * 1024,
)

from django.core.handlers.wsgi import WSGIRequest  # noqa: E402
from django.core.signals import request_finished, request_started  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

from bridge import WsgiToAsgi  # noqa: E402

_lock = threading.Lock()
_counts = {"started": 0, "finished": 0}


def _on_request_started(sender: Any, **kwargs: Any) -> None:
    with _lock:
        _counts["started"] += 1


def _on_request_finished(sender: Any, **kwargs: Any) -> None:
    with _lock:
        _counts["finished"] += 1


request_started.connect(_on_request_started, dispatch_uid="bridge-integration-started")
request_finished.connect(_on_request_finished, dispatch_uid="bridge-integration-finished")


def health(request: WSGIRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


def session_view(request: WSGIRequest) -> HttpResponse:
    if request.method == "POST":
        request.session["name"] = request.POST["name"]
        request.session["visits"] = 0
        return HttpResponse("stored", content_type="text/plain")
    if "name" not in request.session:
        return JsonResponse({"name": None, "visits": None})
    request.session["visits"] += 1
    return JsonResponse({"name": request.session["name"], "visits": request.session["visits"]})


def upload(request: WSGIRequest) -> HttpResponse:
    stored = request.FILES["file"]
    digest = hashlib.sha256()
    size = 0
    for chunk in stored.chunks():
        digest.update(chunk)
        size += len(chunk)
    return JsonResponse(
        {
            "name": stored.name,
            "content_type": stored.content_type,
            "size": size,
            "sha256": digest.hexdigest(),
            "fields": {key: request.POST.getlist(key) for key in request.POST},
        }
    )


def stream(request: WSGIRequest) -> StreamingHttpResponse:
    count = int(request.GET.get("n", "5"))

    def generate() -> Iterator[bytes]:
        for i in range(count):
            yield f"line {i}\n".encode()

    return StreamingHttpResponse(generate(), content_type="text/plain")


def boom(request: WSGIRequest) -> HttpResponse:
    raise RuntimeError("boom from a Django view")


def echo_json(request: WSGIRequest) -> HttpResponse:
    return JsonResponse({"received": json.loads(request.body), "query": request.GET.dict()})


urlpatterns = [
    path("health", health),
    path("session", session_view),
    path("upload", upload),
    path("stream", stream),
    path("boom", boom),
    path("json", echo_json),
]

django_wsgi = get_wsgi_application()


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Django, plus a route of our own outside it that reports the counter."""
    if environ.get("PATH_INFO") == "/__counts__":
        with _lock:
            body = json.dumps(_counts).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    return cast(Iterable[bytes], django_wsgi(environ, start_response))  # django is untyped


asgi = WsgiToAsgi(app)

assert django.VERSION >= (4, 2)
