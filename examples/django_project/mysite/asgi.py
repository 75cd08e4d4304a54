"""A Django project served by an ASGI server: Django's *WSGI* application, with its
synchronous middleware (sessions, CSRF, security headers), run through bridge.WsgiToAsgi
instead of Django's own ASGI handler. Each request runs on the bridge's thread pool, and
the response's ``close()`` (Django's ``request_finished``) always runs.

    cd examples/django_project
    uvicorn mysite.asgi:application --host 127.0.0.1 --port 8000
    curl http://127.0.0.1:8000/api/notes/
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from bridge import WsgiToAsgi

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

application = WsgiToAsgi(get_wsgi_application())
