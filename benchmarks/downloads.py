"""A 100 MiB download through each direction, with and without ASGI's Path Send
extension, against the servers sending the same file natively, on 127.0.0.1:

    python -m benchmarks.downloads              # 100 MiB, 5 rounds
    python -m benchmarks.downloads --mib 20 --rounds 3

Each subject is one server process serving an app of ``benchmarks.download_apps``; every
round downloads the file once from each subject, in an order that rotates, with a plain
socket client that reads into one buffer (the client's cost is the same for all). Per
download: wall time, and the CPU time the server's processes spent (user + system, from
psutil); the report gives medians, as MiB/s, server CPU ms per MiB, and time as a ratio
to gunicorn sending the file with sendfile (the floor for a WSGI server). Every download
is checked (status, length, a SHA-256 of the body), so a broken path cannot look fast.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import psutil

from .servers import Process, Server, _gunicorn, _uvicorn

_APPS = "benchmarks.download_apps:"


def _granian(target: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "granian",
        "--interface", "asgi",
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1",
        "--no-ws",
        "--log-level", "warning",
        target,
    ]  # fmt: skip


@dataclass(frozen=True)
class Subject:
    label: str
    path: str  # the request target
    server: Server


def _subject(
    label: str, key: str, target: str, argv: Callable[[str, int], list[str]], path: str = "/file"
) -> Subject:
    return Subject(label, path, Server(key, label, _APPS + target, argv))


NATIVE = "WSGI app on gunicorn gthread (sendfile): the floor"
SUBJECTS = [
    _subject(NATIVE, "native-wsgi@gunicorn", "wsgi_file", _gunicorn),
    _subject("ASGI app on granian (Path Send)", "native-asgi@granian", "asgi_file", _granian),
    _subject("ASGI app on uvicorn (bytes)", "native-asgi@uvicorn", "asgi_file", _uvicorn("httptools")),
    _subject("WSGI app, bridge on granian (Path Send)", "w2a-bridge@granian", "w2a_bridge", _granian),
    _subject(
        "WSGI app, bridge on uvicorn (bytes)", "w2a-bridge@uvicorn", "w2a_bridge", _uvicorn("httptools")
    ),
    _subject("WSGI app, a2wsgi on granian (bytes)", "w2a-a2wsgi@granian", "w2a_a2wsgi", _granian),
    _subject(
        "ASGI app, bridge on gunicorn (Path Send: sendfile)", "a2w-bridge@gunicorn", "a2w_bridge", _gunicorn
    ),
    _subject(
        "ASGI app, bridge on gunicorn (bytes)",
        "a2w-bridge-bytes@gunicorn",
        "a2w_bridge",
        _gunicorn,
        "/file?bytes",
    ),
    _subject("ASGI app, a2wsgi on gunicorn (bytes)", "a2w-a2wsgi@gunicorn", "a2w_a2wsgi", _gunicorn),
]


def download(port: int, path: str, size: int) -> tuple[float, str]:
    """One GET of ``path``: the wall time and the body's SHA-256."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        buffer = bytearray()
        while True:
            data = sock.recv(1 << 20)
            if not data:
                break
            buffer += data
    elapsed = time.perf_counter() - started
    head, _, body = bytes(buffer).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200") or len(body) != size:
        raise RuntimeError(f"GET {path} on port {port}: {head[:200]!r}, {len(body)} of {size} body bytes")
    return elapsed, hashlib.sha256(body).hexdigest()


def server_cpu(process: Process) -> float:
    """CPU seconds the server's process and its children have used."""
    try:
        root = psutil.Process(process.proc.pid)
        total = 0.0
        for each in [root, *root.children(recursive=True)]:
            times = each.cpu_times()
            total += times.user + times.system
        return total
    except psutil.Error:
        return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=100, help="size of the file (default: 100)")
    parser.add_argument("--rounds", type=int, default=5, help="downloads per subject (default: 5)")
    args = parser.parse_args()
    size = args.mib * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="bridge-downloads-") as workdir:
        file = Path(workdir) / "download.bin"
        file.write_bytes(os.urandom(size))
        expected = hashlib.sha256(file.read_bytes()).hexdigest()
        os.environ["BENCH_DOWNLOAD_FILE"] = str(file)
        processes = [Process(subject.server, Path(workdir)) for subject in SUBJECTS]
        try:
            for process in processes:
                process.wait_ready()
            times: dict[str, list[float]] = {s.server.key: [] for s in SUBJECTS}
            cpu: dict[str, list[float]] = {s.server.key: [] for s in SUBJECTS}
            pairs = list(zip(SUBJECTS, processes))
            for round_ in range(args.rounds):
                shift = round_ % len(pairs)
                for subject, process in pairs[shift:] + pairs[:shift]:
                    before = server_cpu(process)
                    elapsed, digest = download(process.port, subject.path, size)
                    if digest != expected:
                        raise RuntimeError(f"{subject.label}: the body differs from the file")
                    times[subject.server.key].append(elapsed)
                    cpu[subject.server.key].append(server_cpu(process) - before)
                print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            for process in processes:
                process.stop()
    floor = statistics.median(times[SUBJECTS[0].server.key])
    print(f"\n{args.mib} MiB download, medians of {args.rounds} rounds, one client on 127.0.0.1\n")
    print("| subject | MiB/s | server CPU ms per MiB | time / floor |")
    print("|---|---:|---:|---:|")
    for subject in SUBJECTS:
        median_time = statistics.median(times[subject.server.key])
        median_cpu = statistics.median(cpu[subject.server.key])
        print(
            f"| {subject.label} | {args.mib / median_time:,.0f} | {median_cpu * 1000 / args.mib:.2f} "
            f"| {median_time / floor:.2f} |"
        )


if __name__ == "__main__":
    main()
