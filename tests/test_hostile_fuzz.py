"""Schemathesis over the live service's OpenAPI schema (/v1/schema): generated valid and invalid
requests, with a valid API key, never get a 5xx, and every documented answer matches the schema.

On top of schemathesis's checks: any request it sent with an idempotency key that was accepted
is sent again, and must come back as the stored answer, byte for byte, marked as a replay.
"""

from __future__ import annotations

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

from tests.test_reliability_support import Service, service, workspace_secret

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


def header(response: Any, name: str) -> str | None:
    values = response.headers.get(name.lower())
    return values[0] if values else None


def test_generated_requests_never_get_a_5xx_and_answers_match_the_schema(
    service: Callable[..., Service],
) -> None:
    # Jobs run inline in the server (immediate backend): fuzzed CSVs reach the import itself.
    server = service(workers=2, TASKS_BACKEND="immediate")
    auth = {"Authorization": f"Bearer {workspace_secret('fuzz')}"}
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

        @given(case=cases)
        @hypothesis_settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            nonlocal replays
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
