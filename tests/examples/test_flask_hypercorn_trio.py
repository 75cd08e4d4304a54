"""examples/flask_hypercorn_trio.py on hypercorn's trio worker: plain and streamed responses,
a streamed upload, and a slow stream that does not hold up other requests."""

from __future__ import annotations

import hashlib
import time
from typing import Iterator

import pytest

from .launch import Serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_flask_on_hypercorn_trio(serve: Serve) -> None:
    server = serve("hypercorn", "-k", "trio", "-b", "127.0.0.1:{port}", "examples.flask_hypercorn_trio:app")
    with server.client() as client, server.client() as other:
        index = client.get("/")
        assert index.status_code == 200
        assert index.headers["server"].startswith("hypercorn")
        assert index.text == "Hello from Flask on hypercorn's trio worker!\n"

        # The stream arrives line by line (0.2 s apart); while it is still running,
        # another request is answered at once.
        arrivals: list[tuple[float, bytes]] = []
        answered = float("inf")
        with client.stream("GET", "/stream", params={"n": "5"}) as stream:
            assert stream.status_code == 200
            assert stream.headers["transfer-encoding"] == "chunked"
            for chunk in stream.iter_raw():
                arrivals.append((time.monotonic(), chunk))
                if len(arrivals) == 1:
                    assert other.get("/").status_code == 200
                    answered = time.monotonic()
        assert b"".join(chunk for _, chunk in arrivals) == b"".join(
            f"line {i} of 5\n".encode() for i in range(5)
        )
        assert len(arrivals) >= 2, arrivals
        assert answered < arrivals[-1][0], "a request waited for another one's stream to end"

        # A chunked upload (no Content-Length) reaches Flask whole, read as it arrives.
        def pieces() -> Iterator[bytes]:
            for i in range(16):
                yield bytes([i]) * 65536

        expected = b"".join(pieces())
        upload = client.post("/upload", content=pieces())
        assert upload.status_code == 200
        assert upload.json() == {"size": len(expected), "sha256": hashlib.sha256(expected).hexdigest()}
        assert client.put("/upload", content=b"abc").json()["size"] == 3

    # SIGTERM to hypercorn's supervisor: the trio worker shuts down cleanly.
    assert server.stop() == 0
    assert not server.needed_kill
    assert "Traceback" not in server.log()
