"""Schemathesis over the live service's OpenAPI schema (/v1/schema): generated valid and invalid
requests, with a valid API key, never get a 5xx, and every documented answer matches the schema.

On top of schemathesis's checks: any request it sent with an idempotency key that was accepted
is sent again, and must come back as the stored answer, byte for byte, marked as a replay. And
most cases get NUL or another control byte somewhere schemathesis rarely puts one: in a string
of the query, the path or the JSON body, or in the API key of Basic credentials (base64, so
the header itself stays clean and the bytes reach the application).
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
)

from tests.reliability.test_support import Service, service, workspace_secret

__all__ = ["service"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

EXAMPLES = 25  # per operation, valid and invalid requests mixed
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
]
KEY_HEADERS = ("Idempotency-Key", "X-Idempotency-Key")
CONTROL_BYTES = st.one_of(
    st.just("\x00"),
    st.text(st.sampled_from([chr(c) for c in (*range(0x20), 0x7F)]), min_size=1, max_size=3),
)
PLACES = ("query", "path", "body", "credentials")


def strings_in(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The paths to the strings inside a JSON value."""
    if isinstance(value, str):
        return [at]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in strings_in(item, (*at, key))]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in strings_in(item, (*at, i))]
    return []


def with_control_bytes(value: Any, at: tuple[Any, ...], inserted: str, where: int) -> Any:
    """``value`` with ``inserted`` put into the string at path ``at``, at ``where`` (modulo)."""
    if not at:
        position = where % (len(value) + 1)
        return value[:position] + inserted + value[position:]
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[at[0]] = with_control_bytes(value[at[0]], at[1:], inserted, where)
    return copy


@st.composite
def hostile(
    draw: st.DrawFn, operation: Any, cases: st.SearchStrategy[Any], secret: str
) -> tuple[Any, dict[str, str]]:
    """A generated case and its headers, control bytes put into one of ``PLACES`` (or none):
    a documented query or path parameter, a string of the JSON body, or a part of the API key
    (``mrk``, the prefix looked up, the secret) sent as Basic credentials."""
    case = draw(cases)
    auth = {"Authorization": f"Bearer {secret}"}
    place = draw(st.sampled_from((*PLACES, None)))
    inserted, where = draw(CONTROL_BYTES), draw(st.integers(0, 100))
    parameters = {"query": operation.query, "path": operation.path_parameters}.get(place or "")
    if parameters:
        name = draw(st.sampled_from(sorted(parameter.name for parameter in parameters)))
        values = case.query if place == "query" else case.path_parameters
        if place == "query" and values is None:
            values = case.query = {}
        values[name] = with_control_bytes(str(values.get(name, "")), (), inserted, where)
    elif place == "body" and strings_in(getattr(case, "body", None)):
        at = draw(st.sampled_from(strings_in(case.body)))
        case.body = with_control_bytes(case.body, at, inserted, where)
    elif place == "credentials":
        parts = secret.split("_", 2)
        part = draw(st.integers(0, len(parts) - 1))
        parts[part] = with_control_bytes(parts[part], (), inserted, where)
        user = "_".join(parts)
        auth = {"Authorization": "Basic " + base64.b64encode(f"{user}:".encode()).decode()}
    return case, auth


def header(response: Any, name: str) -> str | None:
    values = response.headers.get(name.lower())
    return values[0] if values else None


def test_generated_requests_never_get_a_5xx_and_answers_match_the_schema(
    service: Callable[..., Service],
) -> None:
    # Jobs run inline in the server (immediate backend): fuzzed CSVs reach the import itself.
    server = service(workers=2, TASKS_BACKEND="immediate")
    secret = workspace_secret("fuzz")
    schema = schemathesis.openapi.from_url(f"{server.base}/v1/schema?format=json")
    tried: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    replays = 0

    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.startswith("/test/"):
            continue  # the test-only throttled copy of the import view
        cases = st.one_of(
            operation.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE),
        )

        @given(generated=hostile(operation, cases, secret))
        @hypothesis_settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(generated: tuple[Any, dict[str, str]]) -> None:
            nonlocal replays
            case, auth = generated
            response = case.call(base_url=server.base, headers=auth, timeout=30)
            tried[case.operation.label] += 1
            statuses[response.status_code] += 1
            case.validate_response(response, checks=CHECKS)
            keyed = any(name in (case.headers or {}) for name in KEY_HEADERS)
            if keyed and 200 <= response.status_code < 300:
                again = case.call(base_url=server.base, headers=auth, timeout=30)
                assert header(again, "Idempotent-Replayed") == "true"
                assert again.content == response.content
                assert again.status_code in (response.status_code, 409)
                replays += 1

        run()

    print(
        f"schemathesis: {sum(tried.values())} requests over {len(tried)} operations, "
        f"{replays} replays checked; statuses {dict(sorted(statuses.items()))}"
    )
    assert not [status for status in statuses if status >= 500]
    assert len(tried) >= 8  # every public operation was exercised
