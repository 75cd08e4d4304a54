"""examples/django_project on uvicorn: Django's WSGI handler with its synchronous middleware
(security headers, sessions, CSRF, APPEND_SLASH, ALLOWED_HOSTS) behind an ASGI server."""

from __future__ import annotations

import html
import re

import pytest

from tests.servers import REPO_ROOT

from .launch import Serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

PROJECT = REPO_ROOT / "examples" / "django_project"


def csrf_token(page: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def test_django_project_on_uvicorn(serve: Serve) -> None:
    server = serve(
        "uvicorn", "mysite.asgi:application", "--host", "127.0.0.1", "--port", "{port}", cwd=PROJECT
    )
    with server.client() as client:
        page = client.get("/")
        assert page.status_code == 200
        assert "No notes yet." in page.text
        # The middleware ran: security headers, and the CSRF cookie for the form.
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert "csrftoken" in client.cookies
        token = csrf_token(page.text)

        # A POST without the CSRF token is refused by CsrfViewMiddleware...
        with server.client() as stranger:
            forged = stranger.post("/", data={"text": "forged"})
        assert forged.status_code == 403
        assert "CSRF verification failed" in forged.text

        # ...with it, the note is stored in the session and the form redirects (PRG).
        added = client.post("/", data={"text": "<b>first</b>", "csrfmiddlewaretoken": token})
        assert added.status_code == 302, added.text
        assert added.headers["location"] == "/"
        assert "sessionid" in client.cookies
        client.post("/", data={"text": "second", "csrfmiddlewaretoken": token})

        # The form validates: an empty note is an error on the same page.
        invalid = client.post("/", data={"text": "", "csrfmiddlewaretoken": token})
        assert invalid.status_code == 200
        assert "This field is required." in invalid.text

        page = client.get("/")
        assert re.findall(r"<li>(.*?)</li>", page.text) == [html.escape("<b>first</b>"), "second"]

        # CommonMiddleware's APPEND_SLASH, then a JSON view; the request is Django's
        # WSGIRequest: the WSGI handler serves it, not Django's ASGI handler.
        assert client.get("/api/notes").headers["location"] == "/api/notes/"
        notes = client.get("/api/notes/")
        assert notes.json() == {"notes": ["<b>first</b>", "second"], "request": "WSGIRequest"}

        # A StreamingHttpResponse arrives chunked, without a Content-Length.
        export = client.get("/notes.txt")
        assert export.status_code == 200
        assert export.headers["content-disposition"] == 'attachment; filename="notes.txt"'
        assert "content-length" not in export.headers
        assert export.text == "1. <b>first</b>\n2. second\n"

        # ALLOWED_HOSTS is enforced on the Host header the client sent.
        assert client.get("/", headers={"host": "evil.example"}).status_code == 400
        # require_http_methods answers other methods (past CSRF, which wants its token).
        assert client.put("/", headers={"x-csrftoken": token}).status_code == 405

    # SIGTERM: uvicorn shuts down, the bridge answering its lifespan shutdown.
    server.stop()
    assert not server.needed_kill
    log = server.log()
    assert "Application shutdown complete." in log
    assert "Traceback" not in log
