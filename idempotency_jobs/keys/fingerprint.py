"""What makes two requests "the same request" (docs/semantics.md#identity).

The fingerprint covers method, path, query string, media type and body. JSON bodies compare as
parsed data, form bodies as their fields sorted by name (the values of a repeated name in their
order), anything else as raw bytes. A body is read as its parser reads it: in its declared
charset. The digest is fed piece by piece, so a large body is never copied whole.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings
from django.http.request import RawPostDataException
from rest_framework.request import Request

__all__ = ["canonical_body", "canonical_body_parts", "default_fingerprint"]

_SEP = b"\x00"
_UTF_8 = "utf-8"
# Canonical text is written and encoded about this many characters at a time.
_CHUNK = 64 * 1024
_MAX_BATCH_DEPTH = 16
# Bodies up to this size are written at once; larger ones in pieces.
_ONE_SHOT = 1024 * 1024
_SURROGATE = re.compile("[\ud800-\udfff]")
# Escaped or encoded; searched one at a time: each starts with a literal, found fast.
_SURROGATE_SOURCES = (re.compile(rb"\\u[dD][89a-fA-F]"), re.compile(rb"\xed[\xa0-\xbf]"))
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
_escape = json.encoder.encode_basestring  # json's own (C) escaping, as its encoder does it


def default_fingerprint(request: Request) -> str:
    """A SHA-256 hex digest of the request's method, path, query, media type and body."""
    media_type = _media_type(request)
    digest = hashlib.sha256()
    for part in (
        (request.method or "").encode(),
        request.path.encode(),
        _canonical_query(request.META.get("QUERY_STRING", "")),
        media_type.encode(),
    ):
        digest.update(part)
        digest.update(_SEP)
    for piece in canonical_body_parts(request, media_type):
        digest.update(piece)
    digest.update(_SEP)
    return digest.hexdigest()


def canonical_body(request: Request, media_type: str) -> bytes:
    """The body in a form where equivalent bodies are equal bytes."""
    return b"".join(canonical_body_parts(request, media_type))


def canonical_body_parts(request: Request, media_type: str) -> Iterator[bytes]:
    """:func:`canonical_body` in pieces, none of them a copy of a large body."""
    if media_type == "multipart/form-data":
        # Boundaries differ between a client's attempts: compare the parsed parts instead.
        yield from _labelled(b"data:", _dumps_text(_multipart_data(request)))
        return
    raw = _raw_body(request)
    if raw is None:
        yield from _labelled(b"data:", _dumps_text(_multipart_data(request)))
        return
    if not raw:
        return
    encoding = _encoding(request)
    if media_type == "application/json" or media_type.endswith("+json"):
        parts = _json_parts(raw, encoding)
        if parts is not None:
            yield from parts
            return
    elif media_type == "application/x-www-form-urlencoded":
        fields = _form_fields(raw, encoding)
        if fields is not None:
            yield from _labelled(b"form:", _dumps_text(fields))
            return
    # The same bytes in another charset are other text: its name is part of them.
    yield b"raw:" if encoding == _UTF_8 else f"raw;charset={encoding}:".encode()
    yield raw


def _media_type(request: Request) -> str:
    content_type = request.META.get("CONTENT_TYPE", "")
    return content_type.split(";", 1)[0].strip().lower()


def _encoding(request: Request) -> str:
    """The charset DRF's parsers decode the body with, by its codec's name."""
    context = getattr(request, "parser_context", None) or {}
    encoding = context.get("encoding") or request._request.encoding or settings.DEFAULT_CHARSET
    try:
        return codecs.lookup(encoding).name
    except LookupError:  # the parser would fail on it: compare the bytes as they are
        return _UTF_8


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


def _json_parts(raw: bytes, encoding: str) -> Iterable[bytes] | None:
    """The body's data as canonical JSON text in UTF-8 pieces; ``None`` if it is not JSON in its
    charset (or holds lone surrogates, which UTF-8 cannot carry)."""
    try:
        # As before charsets counted: in UTF-8, UTF-16 and -32 are detected too.
        data = json.loads(raw if encoding == _UTF_8 else raw.decode(encoding))
        if len(raw) > _ONE_SHOT and _surrogate_free(raw, encoding):
            return _utf8(b"json:", _json_pieces(data))
        text = _dumps_text(data)  # most bodies: their few copies are small, json's C is fast
    except (ValueError, RecursionError):  # not JSON, or nested too deep to parse
        return None
    return _labelled(b"json:", text) if _encodable(text) else None


def _surrogate_free(raw: bytes, encoding: str) -> bool:
    """Whether the strings parsed from ``raw`` surely hold no lone surrogate (which would make
    the body compare as bytes, found only once its text is written)."""
    if encoding != _UTF_8 or json.detect_encoding(raw) != _UTF_8:
        return False
    return not any(source.search(raw) for source in _SURROGATE_SOURCES)


def _json_pieces(value: Any) -> Iterator[str]:
    """``_dumps_text(value)`` in pieces: json's encoder writes the parts that fit in
    ``_CHUNK``, long strings go a slice at a time. Walks a stack, not the Python stack."""
    stack = [_value_pieces(value)]
    while stack:
        piece = next(stack[-1], None)
        if piece is None:
            stack.pop()
        elif isinstance(piece, str):
            yield piece
        else:
            stack.append(_value_pieces(piece.value))


@dataclass(frozen=True, slots=True)
class _Nested:
    value: Any


def _value_pieces(value: Any) -> Iterator[str | _Nested]:
    """One value's text, with ``_Nested`` in place of each member too large to write at once."""
    if type(value) is str:
        if len(value) <= _CHUNK:
            yield _escape(value)
            return
        yield '"'
        for start in range(0, len(value), _CHUNK):
            yield _escape(value[start : start + _CHUNK])[1:-1]
        yield '"'
    elif type(value) is dict:
        yield "{"
        yield from _members(((key, value[key]) for key in sorted(value)), as_dict=True)
        yield "}"
    elif type(value) is list:
        yield "["
        yield from _members(((None, item) for item in value), as_dict=False)
        yield "]"
    else:
        yield _encode(value)


def _members(
    members: Iterable[tuple[str | None, Any]], *, as_dict: bool
) -> Iterator[str | _Nested]:
    """A container's members: those that fit together are written as one batch by json's
    encoder; one that does not fit alone is ``_Nested``."""
    batch: list[tuple[str | None, Any]] = []
    room = _CHUNK
    separator = ""
    for key, member in members:
        size = len(key) + 4 if key is not None else 1
        left = _fits(member, room - size)
        if left < 0 and batch:
            yield separator + _batch_text(batch, as_dict=as_dict)
            batch, room, separator = [], _CHUNK, ","
            left = _fits(member, room - size)
        if left >= 0:
            batch.append((key, member))
            room = left
            continue
        yield separator + (_escape(key) + ":" if key is not None else "")
        yield _Nested(member)
        separator = ","
    if batch:
        yield separator + _batch_text(batch, as_dict=as_dict)


def _batch_text(batch: list[tuple[str | None, Any]], *, as_dict: bool) -> str:
    """Members written by json's encoder, without the brackets around them."""
    data: Any = dict(batch) if as_dict else [member for _, member in batch]
    return _encode(data)[1:-1]


def _fits(value: Any, room: int, depth: int = 0) -> int:
    """``room`` less about the length of ``value``'s text; negative if it does not fit, or is
    nested deeper than json's encoder is asked to go at once."""
    kind = type(value)
    if kind is str:
        return room - len(value) - 2
    if kind is not dict and kind is not list:
        return room - 24  # a number, true, false, null
    if depth >= _MAX_BATCH_DEPTH:
        return -1
    room -= 2
    if kind is dict:
        for key in value:
            room -= len(key) + 4
        members = value.values()
    else:
        room -= len(value)
        members = value
    for member in members:  # scalars here rather than in a call each: most members are
        kind = type(member)
        if kind is str:
            room -= len(member) + 2
        elif kind is dict or kind is list:
            room = _fits(member, room, depth + 1)
        else:
            room -= 24
        if room < 0:
            return -1
    return room


def _form_fields(raw: bytes, encoding: str) -> list[tuple[str, str]] | None:
    """The fields sorted by name, a repeated name's values in their order (QueryDict's last
    value wins); ``None`` if the body is not text in UTF-8."""
    if encoding == _UTF_8:
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            return None
        fields = parse_qsl(text, keep_blank_values=True)
    else:  # as Django's QueryDict reads it
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            text = raw.decode("iso-8859-1")
        fields = parse_qsl(text, keep_blank_values=True, encoding=encoding)
    return sorted(fields, key=itemgetter(0))


def _multipart_data(request: Request) -> list[Any]:
    django_request = request._request
    fields = sorted(
        ((name, value) for name, values in django_request.POST.lists() for value in values),
        key=itemgetter(0),
    )
    files = []
    for name, uploads in django_request.FILES.lists():
        for upload in uploads:
            digest = hashlib.sha256()
            for chunk in upload.chunks():
                digest.update(chunk)
            upload.seek(0)
            files.append((name, upload.name, upload.content_type, digest.hexdigest()))
    return [fields, sorted(files, key=itemgetter(0))]


def _utf8(label: bytes, pieces: Iterable[str]) -> Iterator[bytes]:
    """``label`` and ``pieces`` in UTF-8, about ``_CHUNK`` characters at a time."""
    yield label
    buffer: list[str] = []
    size = 0
    for piece in pieces:
        buffer.append(piece)
        size += len(piece)
        if size >= _CHUNK:
            yield "".join(buffer).encode()
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode()


def _labelled(label: bytes, text: str) -> Iterator[bytes]:
    """``label`` and ``text`` in UTF-8, a slice at a time."""
    yield label
    if len(text) <= _CHUNK:
        yield text.encode()
        return
    for start in range(0, len(text), _CHUNK):
        yield text[start : start + _CHUNK].encode()


def _encodable(text: str) -> bool:
    """JSON can carry lone surrogates (``"\\ud800"``), which UTF-8 cannot."""
    return text.isascii() or _SURROGATE.search(text) is None


def _dumps_text(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _dumps(data: Any) -> bytes:
    return _dumps_text(data).encode()


_EMPTY_QUERY = _dumps([])
