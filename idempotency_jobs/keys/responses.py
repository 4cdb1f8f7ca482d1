"""Turning a view's response into a stored record, and a stored record back into a response."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.http import HttpResponse
from django.http.response import HttpResponseBase

__all__ = ["REPLAYED_HEADER", "StoredResponse", "accepts"]

REPLAYED_HEADER = "Idempotent-Replayed"
ALWAYS_STORED = ("Content-Type", "Location")
# Whatever the configuration says, these never leave one response for another.
NEVER_STORED = frozenset(
    {
        "set-cookie",
        "cookie",
        "authorization",
        "proxy-authorization",
        "www-authenticate",
        "proxy-authenticate",
    }
)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    replayable: bool = True

    @classmethod
    def capture(
        cls, response: HttpResponseBase, *, max_body: int, extra_headers: Iterable[str] = ()
    ) -> StoredResponse:
        """What to keep of a rendered response; streamed or oversized bodies are not kept."""
        names = [*ALWAYS_STORED, *extra_headers]
        headers = [
            (name, response[name])
            for name in dict.fromkeys(names)
            if name.lower() not in NEVER_STORED and response.has_header(name)
        ]
        if response.streaming or not isinstance(response, HttpResponse):
            return cls(status=response.status_code, headers=headers, replayable=False)
        body = response.content
        if len(body) > max_body:
            return cls(status=response.status_code, headers=headers, replayable=False)
        return cls(status=response.status_code, body=body, headers=headers)

    @property
    def content_type(self) -> str | None:
        """The stored ``Content-Type``; ``None`` for an empty body, which has no media type."""
        if not self.body:
            return None
        return next((value for name, value in self.headers if name.lower() == "content-type"), None)

    def to_response(self, status: int | None = None) -> HttpResponse:
        """The stored response, byte for byte, marked as a replay."""
        response = HttpResponse(self.body, status=status or self.status)
        del response["Content-Type"]
        for name, value in self.headers:
            response[name] = value
        response[REPLAYED_HEADER] = "true"
        return response


def accepts(accept: str | None, content_type: str) -> bool:
    """Whether an ``Accept`` header admits ``content_type`` (RFC 9110 §12.5.1).

    The most specific media range that matches decides, and ``q=0`` excludes. A type with a
    structured syntax suffix (``application/problem+json``) is also admitted where its suffix
    type (``application/json``) is, as JSON clients read it. No or an empty header admits all.
    """
    if not accept or not accept.strip():
        return True
    media_type, params = _parse(content_type)
    if media_type is None:
        return True
    candidates = [media_type]
    main, _, sub = media_type.partition("/")
    if "+" in sub:
        candidates.append(f"{main}/{sub.rpartition('+')[2]}")
    ranges = []
    for item in accept.split(","):
        media_range, range_params = _parse(item)
        if media_range is not None:
            ranges.append((media_range, range_params, _q(range_params.pop("q", "1"))))
    return any(_quality(ranges, candidate, params) > 0 for candidate in candidates)


def _quality(
    ranges: list[tuple[str, dict[str, str], float]], media_type: str, params: dict[str, str]
) -> float:
    main = media_type.partition("/")[0]
    best: tuple[int, float] | None = None
    for media_range, range_params, quality in ranges:
        if media_range == media_type:
            if any(params.get(name) != value for name, value in range_params.items()):
                continue
            specificity = 3 if range_params else 2
        elif media_range == f"{main}/*":
            specificity = 1
        elif media_range == "*/*":
            specificity = 0
        else:
            continue
        if best is None or specificity > best[0]:
            best = (specificity, quality)
    return best[1] if best is not None else 0.0


def _parse(value: str) -> tuple[str | None, dict[str, str]]:
    """``type/subtype`` in lower case and the parameters of a media type or range."""
    media_type, *rest = value.split(";")
    media_type = media_type.strip().lower()
    if media_type.count("/") != 1:
        return None, {}
    params = {}
    for param in rest:
        name, _, param_value = param.partition("=")
        params[name.strip().lower()] = param_value.strip().strip('"').lower()
    return media_type, params


def _q(value: str) -> float:
    try:
        quality = float(value)
    except ValueError:
        return 1.0
    return min(max(quality, 0.0), 1.0) if quality == quality else 1.0  # NaN: as if absent
