"""A FastAPI app with a lifespan, on gunicorn with --preload, through bridge.AsgiToWsgi.

    gunicorn --preload -w 2 -k gthread --threads 4 --no-control-socket \\
        -b 127.0.0.1:8000 examples.fastapi_gunicorn:app
    curl http://127.0.0.1:8000/

(``--no-control-socket`` is for gunicorn 27 and later; leave it out on older versions.)
``--preload`` imports this module once in the master, then forks the workers. Nothing
runs at import: ``AsgiToWsgi`` starts its event loop and the app's lifespan lazily, in
each worker, before that worker answers its first request, so every worker opens its
own pool (a pool opened in the master would be shared, broken, by the forked workers).
The lifespan's state reaches every request (``request.state.pool``).

On SIGTERM gunicorn lets the requests in flight finish, then each worker exits normally
and the bridge runs the lifespan shutdown (the code after ``yield``) from ``atexit``: no
gunicorn hook is needed. To start the lifespan as a worker boots rather than on its first
request (a failing startup then stops gunicorn with "Worker failed to boot"), or to shut it
down at a moment of your choosing, add hooks in a config file (``gunicorn -c conf.py``)::

    def post_worker_init(worker):
        from examples.fastapi_gunicorn import app
        app.start()

    def worker_exit(server, worker):
        from examples.fastapi_gunicorn import app
        app.close()
"""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator, TypedDict

from fastapi import FastAPI, Request

from bridge import AsgiToWsgi

logging.basicConfig(level=logging.INFO, format="[%(process)d] [%(name)s] %(message)s")
logger = logging.getLogger("examples.fastapi_gunicorn")


@dataclass
class Pool:
    """Stands for a connection pool: made for one process, closed at its end."""

    pid: int
    queries: int = 0
    closed: bool = False

    async def query(self) -> int:
        assert not self.closed, "pool is closed"
        self.queries += 1
        return self.queries


class State(TypedDict):
    pool: Pool


@asynccontextmanager
async def lifespan(api: FastAPI) -> AsyncIterator[State]:
    pool = Pool(pid=os.getpid())
    logger.info("pool opened in pid %d", pool.pid)
    yield {"pool": pool}
    pool.closed = True
    logger.info("pool closed in pid %d after %d queries", pool.pid, pool.queries)


api = FastAPI(lifespan=lifespan)


@api.get("/")
async def index(request: Request) -> dict[str, int]:
    pool: Pool = request.state.pool
    return {"pid": os.getpid(), "pool_pid": pool.pid, "query": await pool.query()}


app = AsgiToWsgi(api, lifespan="on")
