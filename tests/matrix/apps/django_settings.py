"""Django settings for the matrix apps, configured in code: no project, no database."""

from __future__ import annotations

import django
from django.conf import settings


def configure(urlconf: str) -> None:
    """Configure Django once per process with ``urlconf`` as ROOT_URLCONF."""
    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="bridge-matrix-not-secret",
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF=urlconf,
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            TEMPLATES=[],
            DATABASES={},
            USE_TZ=True,
        )
        django.setup()
