"""Integration tests: ASGI apps served through ``bridge.AsgiToWsgi`` by real WSGI servers.

Apps (each module's ``app`` is the WSGI callable the servers load):

* ``fastapi_app``: FastAPI with lifespan state, Depends, UploadFile, StreamingResponse,
  BackgroundTasks; wrapped in ``recorder.Recorder``, which records how each request's
  task ended (``?token=...``) in marker files.
* ``starlette_app``: a small Starlette app.
* ``flask_roundtrip``: ``AsgiToWsgi(WsgiToAsgi(flask_app))`` next to the plain Flask app.

Servers (``conftest.py``): gunicorn (sync, gthread; with and without --preload), waitress and
werkzeug's dev server (``serve.py``), on asyncio and trio (``BRIDGE_TEST_BACKEND``).

Run: ``pytest tests/integration_asgi_apps -s`` (``-s`` shows the measured figures).
"""
