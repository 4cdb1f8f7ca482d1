"""``/problems/``: docs/problems.md as a page, so that each problem's ``type`` (``/problems/#code``,
``IDEMPOTENCY_JOBS["PROBLEM_TYPE_BASE"]``) leads to the section documenting its code."""

from __future__ import annotations

import functools
import html
import re
from pathlib import Path

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from idempotency_jobs.exceptions import problem_details, problem_response

PAGE = Path(__file__).resolve().parent.parent / "docs" / "problems.md"
HEADING = re.compile(r"(#{1,3}) (.+)")


@csrf_exempt  # so that a POST gets the 405 problem, not the CSRF failure page
def problems(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        problem = problem_details(405, "method_not_allowed", "This page answers GET only.")
        return problem_response(problem, headers={"Allow": "GET, HEAD"})
    return HttpResponse(_page())


@functools.cache
def _page() -> str:
    """The page's headings (each with the anchor GitHub gives it) and paragraphs, as HTML."""
    parts = ['<!doctype html><meta charset="utf-8"><title>Problem types</title>']
    for block in PAGE.read_text(encoding="utf-8").split("\n\n"):
        if heading := HEADING.fullmatch(block.strip()):
            level, text = len(heading[1]), heading[2]
            anchor = re.sub(r"[^\w -]", "", text.lower()).replace(" ", "-")
            parts.append(f'<h{level} id="{anchor}">{_inline(text)}</h{level}>')
        else:
            parts.append(f"<p>{_inline(block)}</p>")
    return "\n".join(parts)


def _inline(text: str) -> str:
    text = re.sub(r"\[([^]]+)\]\([^)]+\)", r"\1", html.escape(text, quote=False))
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
