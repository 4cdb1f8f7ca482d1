"""A chunked request body, read whole before anything fingerprints or parses it
(docs/semantics.md#identity).

Under WSGI, Django reads only ``Content-Length`` bytes of a body, and DRF parses a request
without one as empty: a ``Transfer-Encoding: chunked`` body would be fingerprinted and parsed as
nothing at all. A server that ends the input with the body says so (``wsgi.input_terminated``,
as gunicorn does; ASGI bodies always are): the body is read whole, up to
``DATA_UPLOAD_MAX_MEMORY_SIZE``, and given its length. From any other server it is refused.
"""

from __future__ import annotations

import io
from typing import IO

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.handlers.asgi import ASGIRequest
from rest_framework.request import Empty, Request

from idempotency_jobs.exceptions import IdempotencyLengthRequired

__all__ = ["read_chunked_body"]

_CHUNK = 64 * 1024
_TOO_BIG = "Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE."
# What DRF keeps of a parse; a parse of the body before its length was known saw nothing.
_DRF_PARSED = ("_data", "_files", "_full_data", "_stream")


def read_chunked_body(request: Request) -> None:
    """Give a chunked body its length, reading it whole; raise 411 if the server cannot end it.

    Raises ``RequestDataTooBig`` (answered 400 or 413, as for a body with a length) beyond
    ``DATA_UPLOAD_MAX_MEMORY_SIZE``, without reading more than that.
    """
    django_request = request._request
    meta = django_request.META
    if meta.get("CONTENT_LENGTH"):
        return
    chunked = "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
    if isinstance(django_request, ASGIRequest):  # its stream is the whole body, spooled
        _check_size(django_request._stream, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        body = django_request.body
    elif not chunked:
        return
    elif meta.get("wsgi.input_terminated"):
        body = _read_whole(meta["wsgi.input"], settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        django_request._body = body
        django_request._stream = io.BytesIO(body)
    else:
        raise IdempotencyLengthRequired()
    if not body:
        return
    meta["CONTENT_LENGTH"] = str(len(body))
    for name in _DRF_PARSED:
        setattr(request, name, Empty)


def _check_size(stream: IO[bytes], limit: int | None) -> None:
    """What Django 6.1 checks itself before reading a body without a length."""
    if limit is not None and stream.seekable():
        size = stream.seek(0, io.SEEK_END)
        stream.seek(0)
        if size > limit:
            raise RequestDataTooBig(_TOO_BIG)


def _read_whole(stream: IO[bytes], limit: int | None) -> bytes:
    parts = []
    size = 0
    while True:
        part = stream.read(_CHUNK if limit is None else min(_CHUNK, limit + 1 - size))
        if not part:
            break
        parts.append(part)
        size += len(part)
        if limit is not None and size > limit:
            raise RequestDataTooBig(_TOO_BIG)
    return b"".join(parts)
