"""A Starlette app sending a file with ``FileResponse``, served through ``AsgiToWsgi``
(``app``): ``GET /health``; ``GET /file`` sends ``download.bin`` from the server's marker
directory (the test writes it there before the server starts). Under bridge, Starlette
sees the Path Send extension in the scope and sends ``http.response.pathsend``.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

from bridge import AsgiToWsgi

from . import markers

FILE_NAME = "download.bin"


async def health(request: Any) -> JSONResponse:
    return JSONResponse({"ok": True})


async def download(request: Any) -> FileResponse:
    return FileResponse(markers.marker_dir() / FILE_NAME, media_type="application/octet-stream")


app = AsgiToWsgi(
    Starlette(routes=[Route("/health", health), Route("/file", download)]), backend=markers.BACKEND
)
