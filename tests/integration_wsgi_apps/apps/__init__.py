"""WSGI apps served through ``bridge.WsgiToAsgi`` by the integration tests.

Each module exposes ASGI apps (``asgi`` and friends) for a server started as a
subprocess, e.g. ``uvicorn tests.integration_wsgi_apps.apps.flask_app:asgi``.
"""
