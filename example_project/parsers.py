"""DRF's JSON parser, refusing JSON nested too deeply to parse with a 400 instead of a crash."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

__all__ = ["JSONParser"]


class JSONParser(parsers.JSONParser):
    """``json`` recurses once per nesting level, so ``[[[[…`` 100 000 deep is a
    ``RecursionError``, which DRF's parser (catching ``ValueError``) lets through as a 500."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply.") from None
