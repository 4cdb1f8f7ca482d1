"""What the service's OpenAPI operations share (its resource tags are in settings): the problem
schema of its error answers, the seeds' examples (the Mailrith import, the Stannp letter), and
the rules of its bodies that drf-spectacular cannot read off the serializers (the extensions
below register themselves when the views import this module)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, inline_serializer
from rest_framework import serializers

from example_project.subscribers.bulk import MAX_MAPPINGS
from idempotency_jobs.exceptions import PROBLEM_CONTENT_TYPE

__all__ = [
    "LETTER_EXAMPLES",
    "MAILRITH_IMPORT_EXAMPLE",
    "not_found",
]

PROBLEM = inline_serializer(
    "Problem",
    {
        "type": serializers.CharField(help_text="A URI reference documenting `code`."),
        "title": serializers.CharField(),
        "status": serializers.IntegerField(),
        "detail": serializers.CharField(),
        "code": serializers.CharField(help_text="Stable: branch on this."),
    },
)


def not_found(description: str) -> dict[tuple[int, str], OpenApiResponse]:
    """A ``responses`` entry: the 404 problem of a ``GET`` on one thing."""
    return {(404, PROBLEM_CONTENT_TYPE): OpenApiResponse(PROBLEM, description=description)}


# The Mailrith API docs' request, member for member.
MAILRITH_IMPORT_EXAMPLE = OpenApiExample(
    "Mailrith's import",
    summary="Ada Lovelace, from the Mailrith API docs",
    value={
        "csv_text": "Email,Name\nada@example.com,Ada Lovelace",
        "mappings": [
            {"csv_column": "Email", "field": {"type": "email"}},
            {"csv_column": "Name", "field": {"type": "name"}},
        ],
    },
    request_only=True,
)

# The Stannp API docs' letter: its -d fields as a form, and the same letter as JSON.
STANNP_LETTER: dict[str, Any] = {
    "test": True,
    "background": "https://www.stannp.com/assets/samples/letter-heading.webp",
    "pages": "Hello {firstname}, <br><br>This is my first letter.",
    "recipient": {
        "title": "Mr",
        "firstname": "John",
        "lastname": "Smith",
        "address1": "123 Sample Street",
        "address2": "Sampleland",
        "town": "Sampletown",
        "postcode": "AB12 3CD",
        "country": "CA",
    },
}
LETTER_EXAMPLES = [
    OpenApiExample(
        "Stannp's letter (form)",
        summary="The Stannp API docs' letter, form-encoded as curl -d sends it",
        value={
            **{name: value for name, value in STANNP_LETTER.items() if name != "recipient"},
            "test": "true",
            **{f"recipient[{key}]": value for key, value in STANNP_LETTER["recipient"].items()},
        },
        media_type="application/x-www-form-urlencoded",
        request_only=True,
    ),
    OpenApiExample(
        "Stannp's letter (JSON)",
        summary="The same letter as JSON",
        value=STANNP_LETTER,
        media_type="application/json",
        request_only=True,
    ),
]


class RecipientSchema(OpenApiSerializerExtension):
    """A town or a city, not blank (``RecipientSerializer.validate``)."""

    target_class = "example_project.letters.serializers.RecipientSerializer"

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_basic_serializer(self.target, direction)
        schema["anyOf"] = [
            {"required": [name], "properties": {name: {"minLength": 1}}}
            for name in ("town", "city")
        ]
        return schema


class LetterCreateSchema(OpenApiSerializerExtension):
    """A template, pages or a file (``LetterCreateSerializer.validate``)."""

    target_class = "example_project.letters.serializers.LetterCreateSerializer"

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_basic_serializer(self.target, direction)
        schema["anyOf"] = [{"required": [name]} for name in ("template", "pages", "file")]
        return schema


class SubscriberImportSchema(OpenApiSerializerExtension):
    """``mappings`` is a ``ListSerializer``, whose bounds drf-spectacular does not show."""

    target_class = "example_project.subscribers.serializers.SubscriberImportSerializer"

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_basic_serializer(self.target, direction)
        schema["properties"]["mappings"].update(minItems=1, maxItems=MAX_MAPPINGS)
        return schema
