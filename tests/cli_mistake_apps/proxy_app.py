"""``app`` is flask's current_app proxy, not an app."""

from __future__ import annotations

from flask import current_app as app

__all__ = ["app"]
