"""Property tests (hypothesis): what odd or hostile input cannot break.

* The subscriber import's CSV handling: any text is refused cleanly or counted, any CSV a CSV
  writer produces round-trips cell for cell (both upsert paths), row accounting is exact, and
  every address the fast email check lets through is one Django's validator accepts.
* Exports: no cell starts a formula, and any value the import can store comes back from
  importing its export unchanged.
* Request identity: different bodies never share a fingerprint, and a reused key with a
  different import body is a 422 that runs nothing. (Key parsing and JSON fingerprints have
  their own properties in tests/keys/test_keys.py and tests/keys/test_fingerprint.py.)
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from operator import itemgetter
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import transaction
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from example_project.subscribers.bulk.exports import (
    export_file_name,
    export_storage,
    export_subscribers,
)
from example_project.subscribers.bulk.imports import (
    PLAIN_ADDRESS,
    PLAIN_EMAIL,
    CsvProblem,
    check_csv,
    import_subscribers,
)
from example_project.subscribers.models import Subscriber
from example_project.workspaces.models import Workspace
from idempotency_jobs.keys.fingerprint import default_fingerprint
from idempotency_jobs.models import Job
from tests.example.test_support import valid_email
from tests.reliability.test_support import IMPORT_URL, MAPPINGS, workspace_secret

DB_EXAMPLES = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MAPPING_SETS = [
    MAPPINGS,
    [{"csv_column": "Email", "field": {"type": "email"}}],
    [
        {"csv_column": "Email", "field": {"type": "email"}},
        {"csv_column": "Plan", "field": {"type": "custom", "key": "plan"}},
    ],
]
# Cells that a CSV writer must quote, and whitespace the import strips.
CSV_ISH = st.text(alphabet="Email,Name,Plan\"'\r\n \t;ab@.x\ufeff\\\u2028é", max_size=200)
NAMES = st.text(
    alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40
)
# Valid addresses (Django's validator agrees), in mixed case: the import lower-cases them.
EMAILS = st.from_regex(
    r"[a-zA-Z0-9_%+-]{1,6}(\.[a-zA-Z0-9_%+-]{1,6})?@[a-zA-Z0-9]{1,8}(-[a-zA-Z0-9]{1,4})?\.[a-zA-Z]{2,4}",
    fullmatch=True,
)


class NoProgress:
    def progress(self, **fields: Any) -> None:
        pass


def normal(email: str) -> str:
    return email.strip().lower()


def as_imported(cell: str) -> str:
    """A cell as docs/jobs.md says the import stores it: trimmed, unless trimming would make
    it start a formula; a quote prefix before a formula dropped."""
    trimmed = cell.strip()
    if re.match(r"'+[=+\-@\t\r]", trimmed):
        return trimmed[1:]
    if trimmed[:1] in {"=", "+", "-", "@"} and cell != cell.lstrip():
        return cell.rstrip()
    return trimmed


def run_import(workspace: Workspace, text: str) -> dict[str, Any]:
    return import_subscribers(workspace.pk, io.StringIO(text, newline=""), MAPPINGS, NoProgress())


def write_csv(header: list[str], rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


@pytest.fixture(params=["orm", pytest.param("copy", marks=pytest.mark.postgresql)])
def upsert_path(request: pytest.FixtureRequest, settings: Any) -> str:
    settings.EXAMPLE_SUBSCRIBER_IMPORT_USE_COPY = request.param == "copy"
    settings.EXAMPLE_SUBSCRIBER_IMPORT_BATCH_SIZE = 7  # several batches per example
    return str(request.param)


# CSV ----------------------------------------------------------------------------------------


@given(st.one_of(st.text(max_size=300), CSV_ISH), st.sampled_from(MAPPING_SETS))
@settings(max_examples=300, deadline=None)
def test_any_text_is_refused_cleanly_or_counted(text: str, mappings: list[dict[str, Any]]) -> None:
    try:
        rows = check_csv(text, mappings)
    except CsvProblem as problem:
        assert str(problem)  # a message a client can act on
    else:
        assert rows >= 0


@given(st.from_regex(PLAIN_ADDRESS, fullmatch=True))
@settings(max_examples=300, deadline=None)
def test_every_email_the_fast_path_accepts_django_accepts(email: str) -> None:
    """The import checks plain addresses with one expression over a whole column; whatever
    it lets through must be valid by Django's rules (the others go to Django's validator)."""
    assume(len(email) <= 254)  # PLAIN_EMAIL's lookahead, slow for hypothesis to generate
    assert re.fullmatch(PLAIN_EMAIL, email)
    assert valid_email(email)


@pytest.mark.django_db
@given(
    rows=st.lists(
        st.tuples(EMAILS, NAMES, st.sampled_from(["", " ", "\t"])),
        max_size=25,
        unique_by=lambda row: row[0].lower(),
    )
)
@DB_EXAMPLES
def test_any_csv_from_a_csv_writer_imports_every_cell_once(
    rows: list[tuple[str, str, str]], upsert_path: str
) -> None:
    workspace, _ = Workspace.objects.get_or_create(name="property")
    text = write_csv(["Email", "Name"], [[pad + e + pad, name] for e, name, pad in rows])
    with transaction.atomic():
        first = run_import(workspace, text)
        stored = dict(Subscriber.objects.filter(workspace=workspace).values_list("email", "name"))
        again = run_import(workspace, text)
        count = Subscriber.objects.filter(workspace=workspace).count()
        transaction.set_rollback(True)

    assert (first["rows"], first["created"], first["failed"]) == (len(rows), len(rows), 0)
    assert stored == {normal(e): as_imported(name) for e, name, _ in rows}
    assert (again["created"], again["updated"], again["skipped"]) == (0, 0, len(rows))
    assert count == len(rows)


@pytest.mark.django_db
@given(
    rows=st.lists(
        st.one_of(
            st.tuples(st.sampled_from(["a@x.io", "B@x.io ", " b@X.io", "c@y.org"]), NAMES),
            st.tuples(st.sampled_from(["", " ", "not-an-email", "a@", "@x.io", "a b@x.io"]), NAMES),
            st.tuples(EMAILS, NAMES),
            st.just(("", "")),
        ),
        max_size=30,
    )
)
@DB_EXAMPLES
def test_row_accounting_is_exact_for_messy_csv(
    rows: list[tuple[str, str]], upsert_path: str
) -> None:
    workspace, _ = Workspace.objects.get_or_create(name="property")
    text = write_csv(["Email", "Name"], [list(row) for row in rows])
    with transaction.atomic():
        result = run_import(workspace, text)
        emails = set(Subscriber.objects.filter(workspace=workspace).values_list("email", flat=True))
        transaction.set_rollback(True)

    blank = sum(1 for e, name in rows if not e.strip() and not name.strip())
    assert result["rows"] == len(rows)
    assert result["created"] + result["updated"] + result["skipped"] + result["failed"] == len(rows)
    assert result["skipped"] == blank
    assert emails == {normal(e) for e, _ in rows if valid_email(normal(e))}
    assert result["created"] == len(emails)
    assert all(2 <= error["row"] <= len(rows) + 1 for error in result["errors"])


FORMULA_ISH = st.text(alphabet="'=+-@\t\r a1\"", max_size=8)


@pytest.mark.django_db
@given(names=st.lists(st.one_of(FORMULA_ISH, NAMES).filter(lambda v: as_imported(v) == v)))
@DB_EXAMPLES
def test_an_export_is_safe_in_a_spreadsheet_and_imports_back_as_it_was(
    names: list[str], settings: Any, tmp_path: Path
) -> None:
    """Every value the import can store: no exported cell starts a formula, and importing the
    file stores the very same value (the COPY path on PostgreSQL, the portable one on SQLite)."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    with transaction.atomic():
        source = Workspace.objects.create(name="formulas")
        Subscriber.objects.bulk_create(
            Subscriber(workspace=source, email=f"s{i}@example.com", name=name)
            for i, name in enumerate(names)
        )
        job_id = uuid.uuid4()
        export_subscribers(source.pk, job_id, ["email", "name"], {}, NoProgress())
        with export_storage().open(export_file_name(job_id), "rb") as exported:
            text = exported.read().decode()
        cells = [row[1] for row in csv.reader(io.StringIO(text, newline=""))][1:]
        target = Workspace.objects.create(name="copy")
        mappings = [
            {"csv_column": "email", "field": {"type": "email"}},
            {"csv_column": "name", "field": {"type": "name"}},
        ]
        import_subscribers(target.pk, io.StringIO(text, newline=""), mappings, NoProgress())
        stored = dict(Subscriber.objects.filter(workspace=target).values_list("email", "name"))
        transaction.set_rollback(True)
    assert not [cell for cell in cells if cell[:1] in {"=", "+", "-", "@", "\t", "\r"}]
    assert stored == {f"s{i}@example.com": name for i, name in enumerate(names)}


# Identity -----------------------------------------------------------------------------------


def fingerprint(body: bytes, content_type: str) -> str:
    request = APIRequestFactory().post(IMPORT_URL, body, content_type=content_type)
    return default_fingerprint(Request(request))


@given(st.binary(max_size=200), st.binary(max_size=200))
@settings(max_examples=200)
def test_different_raw_bodies_never_match(one: bytes, other: bytes) -> None:
    assume(one != other)
    assert fingerprint(one, "application/octet-stream") != fingerprint(
        other, "application/octet-stream"
    )


FIELDS = st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5)), max_size=5)


@given(FIELDS, FIELDS)
@settings(max_examples=200)
def test_different_form_fields_never_match(one: list[Any], other: list[Any]) -> None:
    # Fields compare sorted by name, the values of a repeated name in their order.
    assume(sorted(one, key=itemgetter(0)) != sorted(other, key=itemgetter(0)))
    form = "application/x-www-form-urlencoded"
    assert fingerprint(urlencode(one).encode(), form) != fingerprint(
        urlencode(other).encode(), form
    )


@pytest.mark.django_db
@given(
    one=st.lists(EMAILS, min_size=1, max_size=5),
    other=st.lists(EMAILS, min_size=1, max_size=5),
)
@DB_EXAMPLES
def test_a_key_reused_with_another_import_body_is_422_and_runs_nothing(
    one: list[str], other: list[str], api: APIClient
) -> None:
    def body(emails: list[str]) -> str:
        csv_text = write_csv(["Email", "Name"], [[email, ""] for email in emails])
        return json.dumps({"csv_text": csv_text, "mappings": MAPPINGS})

    assume(body(one) != body(other))
    key = f"property-{uuid.uuid4()}"
    jobs = Job.objects.count()

    def post(emails: list[str]) -> Any:
        return api.post(
            IMPORT_URL, body(emails), content_type="application/json", HTTP_IDEMPOTENCY_KEY=key
        )

    first = post(one)
    assert first.status_code == 202, first.content
    reused = post(other)
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_mismatch"
    same = api.post(
        IMPORT_URL, body(one), content_type="application/json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert same.get("Idempotent-Replayed") == "true" and same.content == first.content
    assert Job.objects.count() == jobs + 1


@pytest.fixture
def api(db: None, settings: Any, tmp_path: Path) -> APIClient:
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    settings.MEDIA_ROOT = str(tmp_path / "media")  # where the imports' CSVs are stored
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {workspace_secret('property')}")
    return client
