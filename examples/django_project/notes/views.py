"""Notes kept in the visitor's session: a form with CSRF protection, a JSON view and a
streamed download."""

from __future__ import annotations

from typing import Iterator

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from .forms import NoteForm


def _notes(request: HttpRequest) -> list[str]:
    notes: list[str] = request.session.get("notes", [])
    return notes


@require_http_methods(["GET", "POST"])
def index(request: HttpRequest) -> HttpResponse:
    form = NoteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        request.session["notes"] = [*_notes(request), form.cleaned_data["text"]]
        return redirect("index")  # post/redirect/get
    return render(request, "notes/index.html", {"form": form, "notes": _notes(request)})


@require_GET
def api_notes(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"notes": _notes(request), "request": type(request).__name__})


@require_GET
def export(request: HttpRequest) -> StreamingHttpResponse:
    def lines() -> Iterator[str]:
        for number, note in enumerate(_notes(request), 1):
            yield f"{number}. {note}\n"

    response = StreamingHttpResponse(lines(), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="notes.txt"'
    return response
