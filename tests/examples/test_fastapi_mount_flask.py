"""examples/fastapi_mount_flask.py on uvicorn: a Flask app mounted under /legacy of a
FastAPI app knows its mount point (root_path -> SCRIPT_NAME), and both apps answer side
by side on one server."""

from __future__ import annotations

import pytest

from .launch import Serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_flask_mounted_in_fastapi(serve: Serve) -> None:
    server = serve("uvicorn", "examples.fastapi_mount_flask:app", "--host", "127.0.0.1", "--port", "{port}")
    with server.client() as client:
        # The new route, answered by FastAPI...
        new = client.get("/api/users/ada")
        assert new.status_code == 200
        assert new.json() == {"name": "ada", "served_by": "fastapi"}
        # ...and an old one, answered by Flask under the mount point.
        old = client.get("/legacy/users/ada")
        assert old.status_code == 200
        assert old.json() == {"name": "ada", "served_by": "flask"}

        # Flask sees the mount point as its script root, and builds URLs under it.
        index = client.get("/legacy/")
        assert index.status_code == 200
        assert index.json() == {
            "script_root": "/legacy",
            "path": "/",
            "profile": "/legacy/users/ada",
            "profile_external": f"{server.base_url}/legacy/users/ada",
        }
        # A URL Flask built leads back to Flask.
        assert client.get(index.json()["profile"]).json()["served_by"] == "flask"

        # A redirect from Flask stays under the mount point, and its session cookie works.
        login = client.post("/legacy/login", data={"user": "ada"})
        assert login.status_code == 302
        assert login.headers["location"] == "/legacy/whoami"
        assert "session" in client.cookies
        whoami = client.get(login.headers["location"])
        assert whoami.json() == {"user": "ada"}
        # Without the cookie, no user.
        with server.client() as stranger:
            assert stranger.get("/legacy/whoami").json() == {"user": None}

        # A path nobody knows gets the 404 page of the app that owns its prefix.
        flask_404 = client.get("/legacy/missing")
        assert flask_404.status_code == 404
        assert "<title>404 Not Found</title>" in flask_404.text
        fastapi_404 = client.get("/missing")
        assert fastapi_404.status_code == 404
        assert fastapi_404.json() == {"detail": "Not Found"}

    # SIGTERM: uvicorn shuts down, the bridge answering its lifespan shutdown.
    server.stop()
    assert not server.needed_kill
    log = server.log()
    assert "Application shutdown complete." in log
    assert "Traceback" not in log
