"""The app of issue 10, item 3: FastAPI with a lifespan, through AsgiToWsgi."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI

from bridge import AsgiToWsgi

from .tracking import LifespanWork


@asynccontextmanager
async def lifespan(api: FastAPI) -> AsyncIterator[None]:
    work = LifespanWork()
    work.startup()
    yield
    await work.shutdown()


api = FastAPI(lifespan=lifespan)


@api.get("/")
async def index() -> dict[str, int]:
    return {"pid": os.getpid()}


@api.get("/sync")
def sync_route() -> dict[str, int]:
    return {"pid": os.getpid()}


app = AsgiToWsgi(api, lifespan="on", shutdown_timeout=10.0)
