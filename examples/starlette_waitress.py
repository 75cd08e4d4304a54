"""A Starlette app on waitress (a pure-Python WSGI server) through bridge.AsgiToWsgi.

    waitress-serve --host 127.0.0.1 --port 8000 examples.starlette_waitress:app
    curl http://127.0.0.1:8000/countdown?n=3               # streamed, a line at a time
    curl --json '{"name": "ada"}' http://127.0.0.1:8000/greetings
    curl -d name=ada http://127.0.0.1:8000/greetings

The app runs on one asyncio event loop in a background thread of the waitress process;
waitress's threads hand requests to it and stream the responses back. (Forms need
python-multipart installed, as always with Starlette.)
"""

from __future__ import annotations

from typing import AsyncIterator

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from bridge import AsgiToWsgi


async def index(request: Request) -> Response:
    return PlainTextResponse("Hello from Starlette, served by a WSGI server through bridge.AsgiToWsgi!\n")


async def countdown(request: Request) -> Response:
    """A streaming response: each line reaches the client as soon as it is sent."""
    start = int(request.query_params.get("n", "5"))

    async def lines() -> AsyncIterator[str]:
        for i in range(start, 0, -1):
            yield f"{i}...\n"
            await anyio.sleep(0.2)
        yield "liftoff\n"

    return StreamingResponse(lines(), media_type="text/plain")


async def greetings(request: Request) -> Response:
    """Accepts JSON or a form (urlencoded or multipart), as the Content-Type says."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = await request.json()
        except ValueError:
            return JSONResponse({"error": "invalid JSON"}, status_code=400)
        name = data.get("name") if isinstance(data, dict) else None
    else:
        async with request.form() as form:
            name = form.get("name")
    if not isinstance(name, str) or not name:
        return JSONResponse({"error": "a name is required"}, status_code=422)
    return JSONResponse({"greeting": f"Hello, {name}!"}, status_code=201)


starlette_app = Starlette(
    routes=[
        Route("/", index),
        Route("/countdown", countdown),
        Route("/greetings", greetings, methods=["POST"]),
    ]
)

app = AsgiToWsgi(starlette_app)
