"""Memory under a crowd of slow uploaders: 1,000 clients each start a 1 MiB upload, send
half of it and stall; the server's resident memory (RSS, its whole process tree) is read
then, beside the same crowd on a native ASGI app, bridge without its total budget (as it
was before ``max_body_memory``), and a2wsgi, all on uvicorn (httptools):

    python -m benchmarks.slow_uploads              # 1,000 clients
    python -m benchmarks.slow_uploads --clients 300

Each server runs alone, in turn: its RSS at rest, then with the crowd stalled (the peak
of a few readings over two seconds), then every upload is finished and every answer
checked (``read 1048576``). Clients send without blocking: what a server does not read
stays in the sockets' buffers, which is how a server that pauses reading is seen.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from .servers import Process, Server, _uvicorn

DECLARED = 1024 * 1024
SENT = DECLARED // 2
_APPS = "benchmarks.upload_apps:"


@dataclass(frozen=True)
class Subject:
    label: str
    server: Server


SUBJECTS = [
    Subject(
        "ASGI app reading its body, on uvicorn (native)",
        Server("native", "uvicorn", _APPS + "asgi_reader", _uvicorn("httptools")),
    ),
    Subject(
        "WSGI app, bridge on uvicorn",
        Server("bridge", "uvicorn", _APPS + "w2a_bridge", _uvicorn("httptools")),
    ),
    Subject(
        "WSGI app, bridge without max_body_memory (before it)",
        Server("bridge-unbounded", "uvicorn", _APPS + "w2a_bridge_unbounded", _uvicorn("httptools")),
    ),
    Subject(
        "WSGI app, a2wsgi on uvicorn",
        Server("a2wsgi", "uvicorn", _APPS + "w2a_a2wsgi", _uvicorn("httptools")),
    ),
]


def rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its children."""
    root = psutil.Process(pid)
    return sum(each.memory_info().rss for each in [root, *root.children(recursive=True)])


def start_uploads(
    port: int, path: str, count: int, declared: int = DECLARED, sent: int = SENT
) -> list[socket.socket]:
    """``count`` connections, each POSTing ``declared`` bytes to ``path`` and sending the
    first ``sent`` of them, as far as the server takes them without blocking."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {declared}\r\n\r\n".encode()
    part = head + b"u" * sent
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            view = memoryview(part)
            while view:
                view = view[sock.send(view) :]
        sockets.append(sock)
    return sockets


def finish_uploads(sockets: list[socket.socket], declared: int = DECLARED, sent: int = SENT) -> int:
    """Send the rest of every body (blocking, with a timeout); return how many answers
    were ``200 ... read <declared>``."""
    good = 0
    for sock in sockets:
        sock.settimeout(30)
    # What did not fit before goes now: the head was sent, the body partly.
    for sock in sockets:
        sock.sendall(b"u" * (declared - sent))  # (the server reads what it had not)
    for sock in sockets:
        data = b""
        with contextlib.suppress(OSError):
            while b"read " not in data or not data.endswith(str(declared).encode()):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        good += data.startswith(b"HTTP/1.1 200") and data.endswith(f"read {declared}".encode())
        sock.close()
    return good


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bridge-slow-uploads-") as workdir:
        for subject in SUBJECTS:
            process = Process(subject.server, Path(workdir))
            try:
                process.wait_ready()
                time.sleep(0.5)
                rest = rss(process.proc.pid)
                sockets = start_uploads(process.port, "/upload", args.clients)
                peak = rest
                for _ in range(8):
                    time.sleep(0.25)
                    peak = max(peak, rss(process.proc.pid))
                answered = finish_uploads(sockets)
            finally:
                process.stop()
            rows.append((subject.label, rest, peak, answered))
            print(f"{subject.label}: done", file=sys.stderr)
    mib = 1024 * 1024
    print(
        f"\n{args.clients} clients, each sent {SENT // 1024} KiB of a {DECLARED // 1024} KiB body "
        "and stalled\n"
    )
    print(
        "| server | RSS at rest, MiB | RSS with the stalled uploads, MiB | growth, MiB "
        "| per connection, KiB | answered |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label, rest, peak, answered in rows:
        print(
            f"| {label} | {rest / mib:.0f} | {peak / mib:.0f} | {(peak - rest) / mib:+.0f} "
            f"| {(peak - rest) / 1024 / args.clients:.0f} | {answered} of {args.clients} |"
        )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
