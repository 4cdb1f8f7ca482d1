"""Turning a view's response into a stored record, and a stored record back into a response."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.http import HttpResponse
from django.http.response import HttpResponseBase

__all__ = ["REPLAYED_HEADER", "StoredResponse"]

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

    def to_response(self, status: int | None = None) -> HttpResponse:
        """The stored response, byte for byte, marked as a replay."""
        response = HttpResponse(self.body, status=status or self.status)
        del response["Content-Type"]
        for name, value in self.headers:
            response[name] = value
        response[REPLAYED_HEADER] = "true"
        return response
