from __future__ import annotations

import re
from typing import Any

from rest_framework import serializers

from .bulk import (
    CUSTOM_PREFIX,
    DEFAULT_FIELDS,
    FIELD_TYPES,
    MAX_MAPPINGS,
    STANDARD_FIELDS,
    CsvProblem,
    check_csv,
)
from .models import Subscriber

__all__ = [
    "SubscriberExportSerializer",
    "SubscriberImportSerializer",
    "SubscriberListFiltersSerializer",
    "SubscriberSerializer",
]

CUSTOM_KEY_PATTERN = r"\A[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}\Z"
CUSTOM_KEY = re.compile(CUSTOM_KEY_PATTERN)


class SubscriberSerializer(serializers.ModelSerializer[Subscriber]):
    class Meta:
        model = Subscriber
        fields = [
            "id",
            "email",
            "name",
            "first_name",
            "last_name",
            "custom_fields",
            "status",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class SubscriberListFiltersSerializer(serializers.Serializer[Any]):
    """The list's query parameters, checked before they reach the database (a NUL is a 400:
    PostgreSQL refuses it in text); an empty one filters nothing."""

    status = serializers.ChoiceField(
        choices=Subscriber.Status.choices,
        required=False,
        allow_blank=True,
        error_messages={
            "invalid_choice": "Not a status: use one of "
            + ", ".join(Subscriber.Status.values)
            + "."
        },
    )
    email = serializers.CharField(
        required=False, allow_blank=True, help_text="Exact match, case and spaces ignored."
    )


class MappedFieldSerializer(serializers.Serializer[Any]):
    type = serializers.ChoiceField(choices=FIELD_TYPES)
    key = serializers.RegexField(
        CUSTOM_KEY_PATTERN,
        required=False,
        help_text="The custom field's name; only with type custom.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["type"] == "custom" and "key" not in attrs:
            raise serializers.ValidationError({"key": "A custom field needs a key."})
        if attrs["type"] != "custom" and "key" in attrs:
            raise serializers.ValidationError({"key": "Only custom fields take a key."})
        return attrs


class MappingSerializer(serializers.Serializer[Any]):
    csv_column = serializers.CharField(max_length=255)
    field = MappedFieldSerializer()


class SubscriberImportSerializer(serializers.Serializer[Any]):
    """A CSV with a header row, and which of its columns feed which subscriber fields.

    Rows are upserted by email. Empty cells never erase stored values. Row numbers in the
    result count the header as row 1.
    """

    csv_text = serializers.CharField(trim_whitespace=False, min_length=1)
    mappings: serializers.ListSerializer[Any] = serializers.ListSerializer(
        child=MappingSerializer(),
        allow_empty=False,
        max_length=MAX_MAPPINGS,
        help_text=f"Which CSV column feeds which field; at most {MAX_MAPPINGS}.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Check the whole CSV now; ``csv_rows`` is its row count, for the job's progress."""
        try:
            rows = check_csv(attrs["csv_text"], attrs["mappings"])
        except CsvProblem as exc:
            raise serializers.ValidationError({exc.field: str(exc)}, code="invalid_csv") from None
        return {**attrs, "csv_rows": rows}


class ExportFiltersSerializer(serializers.Serializer[Any]):
    status = serializers.ListField(
        child=serializers.ChoiceField(choices=Subscriber.Status.choices),
        required=False,
        allow_empty=False,
        min_length=1,
    )
    created_after = serializers.DateTimeField(required=False, help_text="Inclusive.")
    created_before = serializers.DateTimeField(required=False, help_text="Exclusive.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        after, before = attrs.get("created_after"), attrs.get("created_before")
        if after is not None and before is not None and after >= before:
            raise serializers.ValidationError("created_after must be before created_before.")
        return attrs

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        """Keep JSON-ready values: the job's parameters are stored as JSON."""
        attrs = super().to_internal_value(data)
        for name in ("created_after", "created_before"):
            if name in attrs:
                attrs[name] = attrs[name].isoformat()
        return attrs


class ExportFieldField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        value: str = super().to_internal_value(data)
        if value in STANDARD_FIELDS:
            return value
        if value.startswith(CUSTOM_PREFIX) and CUSTOM_KEY.match(value.removeprefix(CUSTOM_PREFIX)):
            return value
        raise serializers.ValidationError(
            f"Unknown field {value!r}: use one of {', '.join(STANDARD_FIELDS)} or custom:<key>."
        )


class SubscriberExportSerializer(serializers.Serializer[Any]):
    """Which subscribers (filters) and which columns (fields, in order) to export."""

    # The member is named "fields" in the API; DRF's metaclass takes declared fields off the
    # class, so ``Serializer.fields`` keeps working.
    fields = serializers.ListField(  # type: ignore[assignment]
        child=ExportFieldField(),
        required=False,
        allow_empty=False,
        min_length=1,
        max_length=50,
        help_text=f"Columns, in order. Default: {', '.join(DEFAULT_FIELDS)}.",
    )
    filters = ExportFiltersSerializer(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        fields = attrs.get("fields") or list(DEFAULT_FIELDS)
        if len(set(fields)) != len(fields):
            raise serializers.ValidationError({"fields": "A field is listed twice."})
        return {"fields": fields, "filters": attrs.get("filters") or {}}
