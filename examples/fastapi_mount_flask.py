"""Route-by-route migration: a legacy Flask app mounted inside a new FastAPI app.

FastAPI serves the new routes; everything under ``/legacy`` still goes to the old Flask
app, through ``bridge.WsgiToAsgi``. The mount sets the ASGI ``root_path`` to ``/legacy``,
which the bridge turns into ``SCRIPT_NAME``, so Flask knows where it lives: ``url_for``
builds ``/legacy/...`` URLs, redirects stay under ``/legacy``, ``request.script_root``
is ``"/legacy"``, and its routes are declared without the prefix.

    uvicorn examples.fastapi_mount_flask:app --host 127.0.0.1 --port 8000
    curl http://127.0.0.1:8000/api/users/ada          # FastAPI (new)
    curl http://127.0.0.1:8000/legacy/users/ada       # Flask (legacy)
"""

from __future__ import annotations

from fastapi import FastAPI
from flask import Flask, jsonify, redirect, request, session, url_for
from flask.typing import ResponseReturnValue

from bridge import WsgiToAsgi

# -- the legacy app, unchanged: it knows nothing about its mount point -----------------------

legacy = Flask(__name__)
legacy.secret_key = "example-only-not-secret"


@legacy.get("/")
def legacy_index() -> ResponseReturnValue:
    return jsonify(
        script_root=request.script_root,
        path=request.path,
        profile=url_for("legacy_profile", name="ada"),
        profile_external=url_for("legacy_profile", name="ada", _external=True),
    )


@legacy.get("/users/<name>")
def legacy_profile(name: str) -> ResponseReturnValue:
    return jsonify(name=name, served_by="flask")


@legacy.post("/login")
def legacy_login() -> ResponseReturnValue:
    session["user"] = request.form["user"]
    return redirect(url_for("legacy_whoami"))


@legacy.get("/whoami")
def legacy_whoami() -> ResponseReturnValue:
    return jsonify(user=session.get("user"))


# -- the new app: new routes here, the rest falls through to the mount -----------------------

app = FastAPI(title="new API")


@app.get("/api/users/{name}")
async def profile(name: str) -> dict[str, str]:
    return {"name": name, "served_by": "fastapi"}


app.mount("/legacy", WsgiToAsgi(legacy))
