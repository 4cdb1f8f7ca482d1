"""Where a keyed request's instructions go (issue 14): each part alone, counted by callgrind.

    .venv/bin/python -m benchmarks.count_parts

Each part runs in a fresh process under ``valgrind --tool=callgrind``, 20 and then 220 times;
the difference over 200 is one call's instructions, whatever else the machine does. On
PostgreSQL, like benchmark 8 (whose ``--serve`` also runs the keyed request with
:class:`NullStore`, a store that claims every key and stores nothing: the request flow alone).
Not part of ``run.py``.
"""

from __future__ import annotations

import os
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import instructions_of, pg_database, setup_django
from idempotency_jobs.keys.stores.base import Claim, Store

PARTS = {
    "select1": "one statement through Django's cursor and psycopg (SELECT 1)",
    "atomic": "Django's transaction.atomic() around nothing",
    "atomic_select": "atomic() around SELECT 1 (adds the BEGIN psycopg sends)",
    "claim": "DatabaseStore.claim() of a new key",
    "claim_params": "the claim's parameters alone (a token, a key, three timestamps)",
    "claim_django": "the claim's statement through Django's cursor (what the store does)",
    "claim_psycopg": "the claim's statement through psycopg's cursor, no Django wrapper",
    "claim_libpq": "the claim's statement through libpq alone (psycopg.pq, libpq's quoting)",
    "parse_key": "parsing and checking the Idempotency-Key header (a 400 if malformed)",
    "fingerprint": "the default fingerprint of the lean view's request (JSON as data)",
    "capture": "capturing the lean view's rendered 201 for storing (safe headers)",
    "store": "claim, atomic() with an on-commit hook and SELECT 1, complete_and_commit()",
}


class NullStore(Store):
    """Claims every key and stores nothing: what the request flow costs without a store."""

    expires_natively = True

    @classmethod
    def from_settings(cls, settings: Any) -> NullStore:
        return cls()

    def claim(self, scope: str, key: str, fingerprint: str, *, ttl: Any, lease: Any) -> Claim:
        return Claim(scope, key, fingerprint, "t" * 32, 1)

    def complete(self, claim: Claim, response: Any) -> None:
        pass

    def after_commit(self, claim: Claim, response: Any) -> None:
        pass

    def release(self, claim: Claim) -> None:
        pass


def serve(part: str, calls: int) -> None:
    import django

    django.setup()
    from django.db import connection, transaction

    from idempotency_jobs.keys.responses import StoredResponse
    from idempotency_jobs.keys.stores.database import DatabaseStore

    store = DatabaseStore()
    stored = StoredResponse(201, b'{"id": 1}', [("Content-Type", "application/json")])

    def claim() -> Any:
        day, minutes = timedelta(hours=24), timedelta(minutes=5)
        return store.claim("user:1", uuid.uuid4().hex, "f" * 64, ttl=day, lease=minutes)

    def select1() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()

    statement = claim_statement(connection)
    flow = flow_parts()

    def run() -> None:
        if part.startswith("claim_"):
            statement(part.removeprefix("claim_"))
        elif part in flow:
            flow[part]()
        elif part == "select1":
            select1()
        elif part == "atomic":
            with transaction.atomic():
                pass
        elif part == "atomic_select":
            with transaction.atomic():
                select1()
        elif part == "claim":
            claim()
        elif part == "store":
            owner = claim()
            with transaction.atomic():
                transaction.on_commit(lambda: None)
                select1()
                store.complete_and_commit(owner, stored)

    for _ in range(20 + calls):
        run()


def flow_parts() -> dict[str, Any]:
    """The request flow's parts that docs/semantics.md asks for, on benchmark 8's lean request."""
    from rest_framework.parsers import JSONParser
    from rest_framework.renderers import JSONRenderer
    from rest_framework.request import Request
    from rest_framework.response import Response
    from rest_framework.test import APIRequestFactory

    from benchmarks.bench_lean import BODY
    from idempotency_jobs.conf import idempotency_settings
    from idempotency_jobs.keys.fingerprint import default_fingerprint
    from idempotency_jobs.keys.headers import parse_key
    from idempotency_jobs.keys.responses import StoredResponse

    key = uuid.uuid4().hex
    made = APIRequestFactory().post(
        "/lean-keyed", BODY, content_type="application/json", headers={"Idempotency-Key": key}
    )
    request = Request(made, parsers=[JSONParser()])
    response = Response({"id": 1, "name": "widget"}, status=201)
    response.accepted_renderer, response.accepted_media_type = JSONRenderer(), "application/json"
    response.renderer_context = {}
    response.render()

    def parse() -> None:
        assert parse_key(
            request,
            idempotency_settings.HEADERS,
            min_length=idempotency_settings.KEY_MIN_LENGTH,
            max_length=idempotency_settings.KEY_MAX_LENGTH,
        )

    def capture() -> None:
        StoredResponse.capture(
            response,
            max_body=idempotency_settings.MAX_STORED_BODY,
            extra_headers=idempotency_settings.REPLAY_HEADERS,
        )

    return {
        "parse_key": parse,
        "fingerprint": lambda: default_fingerprint(request),
        "capture": capture,
    }


def claim_statement(connection: Any) -> Any:
    """The claim's statement of a new key, run the way ``how`` says: what it would cost off
    Django's cursor (not what the store does: it keeps Django's cursor, RESULTS.md says why)."""
    from django.utils import timezone
    from psycopg import pq

    from idempotency_jobs.keys.stores.database import _claim_sql

    connection.ensure_connection()
    raw = connection.connection
    sql = _claim_sql(connection.alias, True)
    escaping = pq.Escaping(raw.pgconn)
    parts = sql.encode().split(b"%s")

    def params() -> tuple[Any, ...]:
        now, stamp = timezone.now(), connection.ops.adapt_datetimefield_value
        key, token = uuid.uuid4().hex, uuid.uuid4().hex
        return ("user:1", key, "f" * 64, token, stamp(now), stamp(now), stamp(now), "user:1",
                key, token)  # fmt: skip

    def run(how: str) -> None:
        values = params()
        if how == "django":
            with connection.cursor() as cursor:
                cursor.execute(sql, values)
                assert cursor.fetchone()
        elif how == "psycopg":
            with raw.cursor() as cursor:
                cursor.execute(sql, values)
                assert cursor.fetchone()
        elif how == "libpq":
            query = bytearray(parts[0])
            for value, part in zip(values, parts[1:], strict=True):
                text = value if isinstance(value, str) else value.isoformat()
                query += escaping.escape_literal(text.encode()) + part
            raw.pgconn.send_query(bytes(query))
            results = []
            while (result := raw.pgconn.get_result()) is not None:
                results.append(result)
            assert results[0].status == pq.ExecStatus.TUPLES_OK, results[0].error_message
            assert int(results[0].get_value(0, 0) or 0)

    return run


def count(part: str, calls: int) -> int:
    return instructions_of("count_parts", "--serve", part, str(calls))


def main() -> None:
    from benchmarks.bench_lean import count_instructions

    with pg_database("parts") as url:
        setup_django("benchmarks.settings", BENCH_DATABASE_URL=url)
        for part, what in PARTS.items():
            print(f"{what}: {(count(part, 220) - count(part, 20)) / 200 / 1e6:.3f} M", flush=True)
        os.environ["BENCH_STORE"] = "benchmarks.count_parts.NullStore"
        for case in ("unkeyed", "keyed"):
            per = (count_instructions(case, 120) - count_instructions(case, 20)) / 100
            print(f"lean view, {case}, with a store that does nothing: {per / 1e6:.3f} M")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        main()
