"""The file of an ASGI ``http.response.pathsend``, for a WSGI server (AsgiToWsgi).

Opened in the WSGI server's thread, which waits on the app anyway (file I/O is for
threads, not for the event loop), checked against what the app declared, and handed to
the server's ``wsgi.file_wrapper`` (gunicorn then sends it with sendfile), else
iterated in blocks.
"""

from __future__ import annotations

import io
import os
import stat
from typing import Any, Callable, Iterable

from .asgi_response import PathBody
from .errors import ResponseError
from .wsgi_streams import FileWrapper

__all__ = ["SentFile", "open_path_body"]

# Blocks of the file, where the server iterates it.
_FILE_BLOCK = 256 * 1024


def open_path_body(
    event: PathBody, file_wrapper: Any, on_close: Callable[[], None] | None
) -> Iterable[bytes]:
    """The response body of ``event``, for the server's ``file_wrapper`` (PEP 3333:
    optional; None: :class:`~bridge.wsgi_streams.FileWrapper`). ``on_close`` runs once
    the server closes it (:class:`SentFile`). A file that cannot be sent, or whose size
    is not the Content-Length the app declared, raises :class:`ResponseError`: the
    request fails before its response starts (500)."""
    path = event.path
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):  # (a FIFO would block the open)
            raise OSError(0, "not a regular file")
        file = SentFile(path, on_close)
    except OSError as exc:
        raise ResponseError(
            f"http.response.pathsend: cannot send {path!r}: {exc.strerror or exc}", rule="asgi-pathsend"
        ) from None
    size = os.fstat(file.fileno()).st_size
    if event.declared is not None and event.declared != size:
        file.close()
        raise ResponseError(
            f"the ASGI app declared Content-Length: {event.declared} and sent {path!r}, "
            f"a file of {size} bytes",
            rule="content-length",
        )
    return file_wrapper(file, _FILE_BLOCK) if file_wrapper is not None else FileWrapper(file, _FILE_BLOCK)


class SentFile(io.FileIO):
    """The file of an http.response.pathsend; its ``close()`` (the server's, through the
    wrapper) then runs ``on_close``: AsgiToWsgi reads and discards what the app left of
    the request body there and gives the app its ``teardown_wait``, as a complete
    response's ``close()`` does (None: nothing to do)."""

    def __init__(self, path: str, on_close: Callable[[], None] | None) -> None:
        super().__init__(path, "rb")
        self.on_close = on_close

    def close(self) -> None:
        try:
            super().close()
        finally:
            on_close, self.on_close = self.on_close, None
            if on_close is not None:
                on_close()
