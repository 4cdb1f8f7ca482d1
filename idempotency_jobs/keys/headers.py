"""Reading the idempotency key from a request's headers: the first step of the request flow."""

from __future__ import annotations

import re
from collections.abc import Sequence

from django.http import HttpRequest

from idempotency_jobs.exceptions import IdempotencyKeyInvalid

__all__ = ["parse_key"]

# RFC 8941 sf-string: a quoted string of printable ASCII with \" and \\ escapes.
_SF_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]*")


def parse_key(
    request: HttpRequest, headers: Sequence[str], *, min_length: int, max_length: int
) -> str | None:
    """The request's idempotency key, ``None`` if it sent none.

    Raises :class:`IdempotencyKeyInvalid` for a malformed key, or for two header names carrying
    different keys.
    """
    values = {request.headers[name] for name in headers if name in request.headers}
    if not values:
        return None
    if len(values) > 1:
        raise IdempotencyKeyInvalid(
            f"The headers {', '.join(headers)} carry different idempotency keys; send one."
        )
    return _validate(_unquote(values.pop()), min_length=min_length, max_length=max_length)


def _unquote(raw: str) -> str:
    value = raw.strip(" \t")
    if value.startswith('"'):
        match = _SF_STRING.fullmatch(value)
        if match is None:
            raise IdempotencyKeyInvalid("The idempotency key is a malformed quoted string.")
        return re.sub(r"\\(.)", r"\1", match.group(1))
    return value


def _validate(key: str, *, min_length: int, max_length: int) -> str:
    if not min_length <= len(key) <= max_length:
        raise IdempotencyKeyInvalid(
            f"The idempotency key must be {min_length} to {max_length} characters long; "
            f"it is {len(key)}."
        )
    if not _VISIBLE_ASCII.fullmatch(key):
        raise IdempotencyKeyInvalid(
            "The idempotency key may only contain visible ASCII characters (0x21-0x7E)."
        )
    return key
