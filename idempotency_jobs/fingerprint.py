"""What makes two requests "the same request" (SPEC §2).

The fingerprint covers method, path, query string, media type and body. JSON bodies compare as
parsed data, form bodies as the sorted multiset of fields, anything else as raw bytes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import parse_qsl

from django.http.request import RawPostDataException
from rest_framework.request import Request

__all__ = ["canonical_body", "default_fingerprint"]

_SEP = b"\x00"


def default_fingerprint(request: Request) -> str:
    """A SHA-256 hex digest of the request's method, path, query, media type and body."""
    media_type = _media_type(request)
    digest = hashlib.sha256()
    for part in (
        (request.method or "").encode(),
        request.path.encode(),
        _canonical_query(request.META.get("QUERY_STRING", "")),
        media_type.encode(),
        canonical_body(request, media_type),
    ):
        digest.update(part)
        digest.update(_SEP)
    return digest.hexdigest()


def canonical_body(request: Request, media_type: str) -> bytes:
    """The body in a form where equivalent bodies are equal bytes."""
    if media_type == "multipart/form-data":
        # Boundaries differ between a client's attempts: compare the parsed parts instead.
        return b"data:" + _dumps(_multipart_data(request))
    raw = _raw_body(request)
    if raw is None:
        return b"data:" + _dumps(_multipart_data(request))
    if not raw:
        return b""
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            return b"json:" + _dumps(json.loads(raw))
        except (ValueError, RecursionError):  # not JSON, or nested too deep to parse
            return b"raw:" + raw
    if media_type == "application/x-www-form-urlencoded":
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            return b"raw:" + raw
        return b"form:" + _dumps(sorted(parse_qsl(text, keep_blank_values=True)))
    return b"raw:" + raw


def _media_type(request: Request) -> str:
    content_type = request.META.get("CONTENT_TYPE", "")
    return content_type.split(";", 1)[0].strip().lower()


def _canonical_query(query_string: str) -> bytes:
    if not query_string:  # most POSTs: what the line below gives for it, without the parsing
        return _EMPTY_QUERY
    return _dumps(sorted(parse_qsl(query_string, keep_blank_values=True)))


def _raw_body(request: Request) -> bytes | None:
    """The raw body, or ``None`` when it was already consumed as a stream (multipart)."""
    try:
        return request._request.body
    except RawPostDataException:
        return None


def _multipart_data(request: Request) -> list[Any]:
    django_request = request._request
    fields = sorted(
        (name, value) for name, values in django_request.POST.lists() for value in values
    )
    files = []
    for name, uploads in django_request.FILES.lists():
        for upload in uploads:
            digest = hashlib.sha256()
            for chunk in upload.chunks():
                digest.update(chunk)
            upload.seek(0)
            files.append((name, upload.name, upload.content_type, digest.hexdigest()))
    return [fields, sorted(files)]


def _dumps(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


_EMPTY_QUERY = _dumps([])
