"""Stannp's ``letters/create`` parameters: form fields, ``recipient[...]`` as a nested object."""

from __future__ import annotations

import re
from datetime import UTC
from typing import Any

from django.http import QueryDict
from rest_framework import serializers

from .models import Letter

__all__ = ["LetterCreateSerializer", "letter_data", "nest_form_fields"]

BRACKETED = re.compile(r"\A(?P<name>[A-Za-z_]\w*)\[(?P<key>[A-Za-z_]\w*)\]\Z")


def nest_form_fields(data: Any) -> dict[str, Any]:
    """``recipient[town]=X`` becomes ``{"recipient": {"town": "X"}}``; JSON bodies pass as is."""
    if not isinstance(data, QueryDict):
        return dict(data) if isinstance(data, dict) else {}
    nested: dict[str, Any] = {}
    for name, values in data.lists():
        value = values[-1] if values else ""
        match = BRACKETED.match(name)
        if match is None:
            nested[name] = value
            continue
        group = nested.setdefault(match["name"], {})
        if isinstance(group, dict):
            group[match["key"]] = value
    return nested


class RecipientSerializer(serializers.Serializer[Any]):
    title = serializers.CharField(max_length=50, required=False, allow_blank=True)
    firstname = serializers.CharField(max_length=100, required=False, allow_blank=True)
    lastname = serializers.CharField(max_length=100, required=False, allow_blank=True)
    company = serializers.CharField(max_length=200, required=False, allow_blank=True)
    job_title = serializers.CharField(max_length=100, required=False, allow_blank=True)
    address1 = serializers.CharField(max_length=255)
    address2 = serializers.CharField(max_length=255, required=False, allow_blank=True)
    address3 = serializers.CharField(max_length=255, required=False, allow_blank=True)
    town = serializers.CharField(max_length=100, required=False, allow_blank=True)
    city = serializers.CharField(max_length=100, required=False, allow_blank=True)
    county = serializers.CharField(max_length=100, required=False, allow_blank=True)
    postcode = serializers.CharField(max_length=20)
    country = serializers.RegexField(
        r"\A[A-Za-z]{2}\Z", help_text="ISO 3166-1 alpha-2 code, e.g. CA or GB."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not (attrs.get("town") or attrs.get("city")):
            raise serializers.ValidationError({"town": "A town (or city) is required."})
        attrs["country"] = attrs["country"].upper()
        return attrs


class LetterCreateSerializer(serializers.Serializer[Any]):
    test = serializers.BooleanField(
        default=False, help_text="A test letter is never printed or charged."
    )
    # Letter.template is a PositiveIntegerField: 2**31 - 1 at most on every database.
    template = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1)
    background = serializers.URLField(max_length=2000, required=False, allow_blank=True)
    pages = serializers.CharField(
        min_length=1, max_length=100_000, required=False, trim_whitespace=False
    )
    file = serializers.URLField(max_length=2000, required=False)
    recipient = RecipientSerializer()
    tags = serializers.CharField(max_length=255, required=False, allow_blank=True)
    duplex = serializers.BooleanField(default=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not any(attrs.get(name) for name in ("template", "pages", "file")):
            raise serializers.ValidationError("Give the letter a template, pages or a file.")
        return attrs


def letter_data(letter: Letter) -> dict[str, Any]:
    """The ``data`` member of Stannp's answer. No PDF is rendered here, so ``pdf`` is null."""
    return {
        "pdf": None,
        "id": str(letter.pk),
        "created": letter.created_at.astimezone(UTC).isoformat(timespec="seconds"),
        "format": "letter",
        "cost": f"{letter.cost:.2f}",
        "status": letter.status,
    }
