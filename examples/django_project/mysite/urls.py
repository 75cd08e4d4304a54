from __future__ import annotations

from django.urls import path
from notes import views

urlpatterns = [
    path("", views.index, name="index"),
    path("api/notes/", views.api_notes, name="api-notes"),
    path("notes.txt", views.export, name="export"),
]
