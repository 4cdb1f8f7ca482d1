"""OpenAPI documentation of idempotent operations, for drf-spectacular (optional dependency).

Every operation that takes part in idempotency (a POST on a view using ``IdempotencyMixin``, or
an ``@idempotent`` handler, for the methods it covers) gets:

* the ``Idempotency-Key`` / ``X-Idempotency-Key`` request headers (``IDEMPOTENCY_JOBS["HEADERS"]``),
* the ``Idempotent-Replayed`` header on its success responses,
* ``application/problem+json`` answers for 400, 406, 409 (with ``Retry-After``), 411, 422 and
  503.

With ``drf_spectacular`` in ``INSTALLED_APPS``, the view extension of
:mod:`idempotency_jobs.schema_extension` (registered at startup) gives every view this module's
schema mixin, so idempotent views are documented by themselves. Operations customised with
``@extend_schema`` bypass view extensions; set ``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] =
"idempotency_jobs.schema.AutoSchema"`` to cover those too.
"""

from __future__ import annotations

import inspect
from typing import Any

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import ComponentRegistry, ResolvedComponent

from idempotency_jobs.conf import idempotency_settings
from idempotency_jobs.exceptions import PROBLEM_CONTENT_TYPE
from idempotency_jobs.jobs.serializers import JobSerializer
from idempotency_jobs.jobs.views import JobViewSet
from idempotency_jobs.keys.core import IdempotencyOptions, ResolvedOptions
from idempotency_jobs.keys.drf import IdempotencyMixin
from idempotency_jobs.keys.responses import REPLAYED_HEADER

__all__ = ["AutoSchema", "IdempotencySchemaMixin", "idempotency_options_for"]

PROBLEM_COMPONENT = "IdempotencyProblem"
PROBLEMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "400": (
        "The idempotency key is malformed, missing where required, sent twice with different "
        "values, or sent by an anonymous caller.",
        ("idempotency_key_invalid", "idempotency_key_missing", "idempotency_key_unscoped"),
    ),
    "406": (
        "The stored response of this idempotency key has a media type this request's `Accept` "
        "excludes; nothing was run.",
        ("idempotency_replay_not_acceptable",),
    ),
    "409": (
        "A request with this idempotency key is still in progress (retry after `Retry-After`), "
        "was superseded, or completed with a response that cannot be replayed.",
        ("idempotency_key_in_use", "idempotency_lease_lost", "idempotency_key_not_replayable"),
    ),
    "411": (
        "A chunked body this server cannot read to its end; send a `Content-Length`. Nothing "
        "was run.",
        ("idempotency_length_required",),
    ),
    "422": (
        "This idempotency key was already used with a different request.",
        ("idempotency_key_mismatch",),
    ),
    "503": (
        "The idempotency key store cannot be reached; nothing was run.",
        ("idempotency_store_unavailable",),
    ),
}


def idempotency_options_for(view: Any, method: str) -> ResolvedOptions | None:
    """The idempotency options of ``view``'s handler for ``method``, if it takes part."""
    options = _handler_options(_handler(view, method))
    if options is None:
        if not isinstance(view, IdempotencyMixin):
            return None
        options = view.get_idempotency_options()
    resolved = options.resolve()
    return resolved if resolved.covers(method) else None


def _handler(view: Any, method: str) -> Any:
    action = getattr(view, "action", None)
    if action:
        return getattr(view, action, None)
    return getattr(view, method.lower(), None)


def _handler_options(handler: Any) -> IdempotencyOptions | None:
    options = getattr(handler, "idempotency_options", None)
    if options is None and callable(handler):
        # ``@api_view`` hides the decorated function in its handler's closure as ``func``.
        try:
            wrapped = inspect.getclosurevars(handler).nonlocals.get("func")
        except (TypeError, ValueError):
            wrapped = None
        options = getattr(wrapped, "idempotency_options", None)
    return options if isinstance(options, IdempotencyOptions) else None


def _problem_component(registry: ComponentRegistry) -> dict[str, Any]:
    codes = sorted(code for _, codes in PROBLEMS.values() for code in codes)
    component = ResolvedComponent(
        name=PROBLEM_COMPONENT,
        type=ResolvedComponent.SCHEMA,
        object=PROBLEM_COMPONENT,
        schema={
            "type": "object",
            "description": "RFC 9457 problem details; branch on `code`.",
            "properties": {
                # ``uri-reference``: ``PROBLEM_TYPE_BASE`` may be a path (``/problems/#code``).
                "type": {"type": "string", "format": "uri-reference"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                # Not an ``enum``: drf-spectacular would hoist it into a generic "CodeEnum".
                "code": {"type": "string", "description": "One of: " + ", ".join(codes) + "."},
            },
            "required": ["type", "title", "status", "detail", "code"],
        },
    )
    registry.register_on_missing(component)
    return component.ref


def document_idempotency(
    operation: dict[str, Any], options: ResolvedOptions, registry: ComponentRegistry
) -> None:
    """Add the key headers, the replay header and the problem responses to ``operation``."""
    parameters = operation.setdefault("parameters", [])
    present = {(p.get("in"), p.get("name", "").lower()) for p in parameters if "in" in p}
    headers = list(idempotency_settings.HEADERS)
    for index, name in enumerate(headers):
        if ("header", name.lower()) in present:
            continue
        description = (
            "Makes the request safe to retry: a retry with the same key and body gets the "
            "original response instead of running again."
            if index == 0
            else f"Alias of `{headers[0]}`."
        )
        parameters.append(
            {
                "in": "header",
                "name": name,
                "required": options.required and index == 0,
                "description": description,
                "schema": {
                    "type": "string",
                    "minLength": idempotency_settings.KEY_MIN_LENGTH,
                    "maxLength": idempotency_settings.KEY_MAX_LENGTH,
                },
            }
        )

    responses = operation.setdefault("responses", {})
    for status_code, response in responses.items():
        if str(status_code).startswith("2"):
            response.setdefault("headers", {})[REPLAYED_HEADER] = {
                "description": "`true` when this is the stored response of an earlier request.",
                "schema": {"type": "string", "enum": ["true"]},
            }
    problem = _problem_component(registry)
    for status_code, (description, _codes) in PROBLEMS.items():
        response = responses.setdefault(status_code, {"description": description})
        response.setdefault("content", {})[PROBLEM_CONTENT_TYPE] = {"schema": problem}
        if status_code == "409":
            response.setdefault("headers", {})["Retry-After"] = {
                "description": "Seconds to wait before retrying a request still in progress.",
                "schema": {"type": "integer"},
            }


class IdempotencySchemaMixin:
    """Mix into any drf-spectacular ``AutoSchema`` to document idempotent operations.

    It also documents a ``JobViewSet``'s create: the job kind's serializer as the request
    body, ``202`` with the job JSON and ``Location`` as the answer.
    """

    view: Any

    def _creates_job(self) -> bool:
        return isinstance(self.view, JobViewSet) and getattr(self.view, "action", None) == "create"

    def get_request_serializer(self) -> Any:
        if self._creates_job():
            return self.view.job_kind.serializer_class
        return super().get_request_serializer()  # type: ignore[misc]

    def get_response_serializers(self) -> Any:
        if self._creates_job():
            return {"202": JobSerializer}
        return super().get_response_serializers()  # type: ignore[misc]

    def get_operation(
        self,
        path: str,
        path_regex: str,
        path_prefix: str,
        method: str,
        registry: ComponentRegistry,
    ) -> dict[str, Any] | None:
        operation: dict[str, Any] | None = super().get_operation(  # type: ignore[misc]
            path, path_regex, path_prefix, method, registry
        )
        options = idempotency_options_for(self.view, method)
        if operation is not None and options is not None:
            document_idempotency(operation, options, registry)
        if operation is not None and self._creates_job() and "202" in operation["responses"]:
            operation["responses"]["202"].setdefault("headers", {})["Location"] = {
                "description": "The job's URL: `GET` it for the job's current state.",
                "schema": {"type": "string", "format": "uri"},
            }
        return operation


class AutoSchema(IdempotencySchemaMixin, SpectacularAutoSchema):
    """drf-spectacular's ``AutoSchema`` that documents idempotency; use as
    ``DEFAULT_SCHEMA_CLASS`` to cover ``@extend_schema`` operations as well."""
