"""The members of a request body that a DRF serializer will not read (a job's unknown fields).

DRF drops them silently: ``filters[status]=bogus`` posted as a form is no filter at all (a form
spells nested fields ``filters.status``), so an export of "bogus" subscribers exports them all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rest_framework import fields, serializers
from rest_framework.utils import html

__all__ = ["unknown_fields"]

Field = fields.Field[Any, Any, Any, Any]


def unknown_fields(
    serializer: serializers.Serializer[Any], data: Any, prefix: str = ""
) -> dict[str, list[str]]:
    """Every member of ``data`` that ``serializer`` (and its nested serializers) will not read,
    named as the client spelt it (``colour``, ``filters.bogus``, ``mappings[0].colum``; in form
    input ``filters[status]``, ``mappings[0]field.tipe``), with what is taken in its place.

    Read-only fields count as unknown; values of the wrong shape are left to the serializer's
    own validation.
    """
    if not isinstance(data, Mapping):
        return {}
    writable = {name: field for name, field in serializer.fields.items() if not field.read_only}
    form = html.is_html_input(data)
    taken = [prefix + _spelling(name, field, form) for name, field in writable.items()]
    unknown = {prefix + key: taken for key in data if not _reads(writable, key, form)}
    for name, field in writable.items():
        value = field.get_value(data)
        if isinstance(field, serializers.ListSerializer) and isinstance(value, list):
            if isinstance(field.child, serializers.Serializer):
                for index, item in enumerate(value):
                    item_prefix = f"{prefix}{name}[{index}]" + ("" if form else ".")
                    unknown.update(unknown_fields(field.child, item, item_prefix))
        elif isinstance(field, serializers.Serializer):
            unknown.update(unknown_fields(field, value, f"{prefix}{name}."))
    return unknown


def _reads(writable: Mapping[str, Field], key: str, form: bool) -> bool:
    """Whether one of the fields reads the member ``key``, as its ``get_value`` does."""
    if not form:
        return key in writable
    name = re.split(r"[.\[]", key, maxsplit=1)[0]
    field = writable.get(name)
    if field is None:
        return False
    rest = key[len(name) :]
    indexed = re.match(r"\[[0-9]+\]", rest) is not None
    dotted = rest.startswith(".") and len(rest) > 1
    if isinstance(field, serializers.ListSerializer):
        return indexed
    if isinstance(field, serializers.Serializer):
        return dotted
    if isinstance(field, fields.ListField):
        return not rest or indexed
    if isinstance(field, fields.DictField):
        return not rest or dotted
    return not rest


def _spelling(name: str, field: Field, form: bool) -> str:
    """How a client writes the field ``name``: in a form, nested fields show their syntax."""
    if form and isinstance(field, serializers.ListSerializer):
        return f"{name}[<n>]<field>"
    if form and isinstance(field, serializers.Serializer):
        return f"{name}.<field>"
    return name
