"""The two streams PEP 3333 puts in the environ: ``wsgi.input`` and ``wsgi.errors``.

Both are plain synchronous objects. The input stream gets its data from a ``pull``
callable that the adapter provides (it blocks the worker thread until the ASGI server
delivers the next chunk), so this module itself owns no thread and no event loop.
"""

from __future__ import annotations

import io
import logging
import os
import stat
from typing import IO, Callable, Iterable, Iterator, Tuple

from .errors import ClientDisconnected

__all__ = ["ErrorStream", "FileWrapper", "StreamingInput"]

errors_logger = logging.getLogger("bridge.wsgi.errors")

# pull() returns the next chunk of the request body and whether more is to come.
Pull = Callable[[], Tuple[bytes, bool]]


def _request_over() -> Tuple[bytes, bool]:
    raise ClientDisconnected("the request is over; its body can no longer be read")


class StreamingInput:
    """``wsgi.input`` for a body that is still arriving.

    Data is pulled from the server only when the app reads, so the app sees the first
    bytes of an upload early and memory stays bounded by what the app asks for. Reads
    never go past ``limit`` (the request's Content-Length). If the client disconnects
    before the body is complete, ``pull`` raises :class:`~bridge.errors.ClientDisconnected`
    (an ``OSError``), so a truncated upload never looks complete.
    """

    __slots__ = ("_buffer", "_eof", "_limit", "_pull")

    def __init__(self, first: bytes, pull: Pull, limit: int | None = None) -> None:
        self._pull = pull
        self._limit = limit
        self._eof = False
        self._buffer = bytearray()
        self._append(first)

    def detach(self) -> None:
        """The request is over: let go of the source (the adapter's request state, which
        holds the environ that holds this stream: a reference cycle otherwise). A read
        that needs more than is buffered then raises ClientDisconnected."""
        self._pull = _request_over

    @property
    def at_eof(self) -> bool:
        """True once the whole body has arrived from the server (it may be unread)."""
        return self._eof

    def _append(self, chunk: bytes) -> None:
        if self._limit is not None:
            if len(chunk) >= self._limit:
                chunk = chunk[: self._limit]
                self._eof = True
            self._limit -= len(chunk)
        self._buffer += chunk

    def _fill(self) -> bool:
        """Pull one more chunk into the buffer; False once the body is complete."""
        if self._eof:
            return False
        chunk, more = self._pull()
        if not more:
            self._eof = True
        self._append(chunk)
        return True

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._fill():
                pass
            return self._take(len(self._buffer))
        while len(self._buffer) < size and self._fill():
            pass
        return self._take(size)

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None or size < 0 else size
        searched = 0
        while True:
            end = self._buffer.find(b"\n", searched)
            if end != -1:
                end += 1
                break
            searched = len(self._buffer)
            if 0 <= limit <= searched:
                end = searched
                break
            if not self._fill():
                end = len(self._buffer)
                break
        if 0 <= limit < end:
            end = limit
        return self._take(end)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        # PEP 3333 and io: `hint` is a byte budget, not a line count.
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def close(self) -> None:
        """Apps must not close ``wsgi.input`` (PEP 3333); tolerated as a no-op."""


class ErrorStream(io.TextIOBase):
    """``wsgi.errors``: a text stream whose lines go to the ``bridge.wsgi.errors`` logger.

    One instance per request: a partial line is kept until its newline arrives or the
    request ends (``flush``), so lines from concurrent requests never interleave.
    Flask's default log handler writes here, hence the WARNING level: visible with
    logging's defaults, without claiming every line is an error.
    """

    level = logging.WARNING

    def __init__(self) -> None:
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"wsgi.errors takes str, not {type(s).__name__}")
        text = self._pending + s
        if "\n" not in text:
            self._pending = text
            return len(s)
        *lines, self._pending = text.split("\n")
        for raw_line in lines:
            line = raw_line.rstrip("\r")
            if line.strip():
                errors_logger.log(self.level, "%s", line)
        return len(s)

    def writelines(self, lines: Iterable[str]) -> None:  # type: ignore[override]
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pending, self._pending = self._pending, ""
        if pending.strip():
            errors_logger.log(self.level, "%s", pending)


class FileWrapper:
    """``wsgi.file_wrapper``: iterate a file in blocks; ``close()`` closes the file.

    Each block is one trip from the worker thread to the event loop, so blocks are at
    least 64 KiB whatever smaller size the app suggests (Django asks for 4 KiB).
    """

    __slots__ = ("blksize", "close", "filelike")

    min_blksize = 64 * 1024

    def __init__(self, filelike: IO[bytes], blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = max(blksize, self.min_blksize)
        close = getattr(filelike, "close", None)
        if close is not None:
            self.close = close

    def whole_file(self) -> Tuple[str, int] | None:
        """The absolute path and the size of the file, when a server may send it by its
        path instead: a regular file, not yet read from, whose name still leads to it
        (not replaced or removed since it was opened). Asks the file system: call it
        where blocking is allowed."""
        filelike = self.filelike
        name = getattr(filelike, "name", None)
        if type(name) is not str or not os.path.isabs(name):
            return None
        try:
            if filelike.tell() != 0:
                return None
            opened = os.fstat(filelike.fileno())
            named = os.stat(name)
        except (AttributeError, OSError, ValueError):
            return None
        if not stat.S_ISREG(opened.st_mode) or (named.st_dev, named.st_ino) != (opened.st_dev, opened.st_ino):
            return None
        return name, opened.st_size

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration
