"""The drf-spectacular view extension that documents idempotent views without any setting.

``AppConfig.ready`` imports this module when ``drf_spectacular`` is installed, so it stays light:
the target is named by its dotted path and :mod:`idempotency_jobs.schema` (which imports DRF's
views) is imported only once a schema is generated, never by a worker.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiViewExtension
from drf_spectacular.plumbing import get_class

__all__ = ["IdempotentViewExtension"]


class IdempotentViewExtension(OpenApiViewExtension):
    """Gives every view a schema class with
    :class:`~idempotency_jobs.schema.IdempotencySchemaMixin`, without settings."""

    target_class = "rest_framework.views.APIView"
    match_subclasses = True
    priority = -1  # any project extension for a specific view wins

    def view_replacement(self) -> Any:
        from idempotency_jobs.schema import IdempotencySchemaMixin, SpectacularAutoSchema

        view_class = self.target
        schema_class = get_class(view_class.schema)
        documented = issubclass(schema_class, SpectacularAutoSchema)  # not e.g. ``schema = None``
        if not documented or issubclass(schema_class, IdempotencySchemaMixin):
            return view_class
        idempotent_schema = type(
            f"Idempotent{schema_class.__name__}", (IdempotencySchemaMixin, schema_class), {}
        )
        return type(
            view_class.__name__,
            (view_class,),
            {
                "schema": idempotent_schema(),
                "__module__": view_class.__module__,
                "__doc__": view_class.__doc__,
            },
        )
