"""Mistakes mypy must catch in user code; each line with an error comment must fail.

This keeps tests/test_typing.py honest: if bridge's types decayed to ``Any``, these
lines would pass and the test would say so.
"""

from __future__ import annotations

from fastapi import FastAPI
from flask import Flask

from bridge import AsgiToWsgi, WsgiToAsgi

api = FastAPI()
flask_app = Flask(__name__)

WsgiToAsgi(api)  # error: an ASGI app is not a WSGI app
WsgiToAsgi(flask_app, max_threads="8")  # error: max_threads is an int
AsgiToWsgi(api, lifespan=True)  # error: lifespan is "auto", "on" or "off"
