"""System checks for bad settings, and settings that follow ``override_settings``."""

from datetime import timedelta

import pytest
from django.core.checks import Error, Warning, run_checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.http import HttpResponse
from django.test import RequestFactory, override_settings
from rest_framework.decorators import api_view
from rest_framework.response import Response
from rest_framework.views import APIView

from idempotency_jobs.checks import check_settings
from idempotency_jobs.conf import DEFAULTS, DURATIONS, idempotency_settings
from idempotency_jobs.exceptions import IdempotencyConfigurationError
from idempotency_jobs.keys.drf import idempotent
from idempotency_jobs.keys.stores import get_store
from idempotency_jobs.keys.stores.database import DatabaseStore
from tests.helpers import CORE_DB, assert_executed, is_replay, post, widgets


def ids(**settings):
    with override_settings(IDEMPOTENCY_JOBS=settings):
        return [message.id for message in check_settings()]


def idempotency_messages():
    return [m for m in run_checks(tags=["compatibility"]) if m.id.startswith("idempotency_jobs.")]


def test_default_settings_pass():
    assert ids() == []
    assert [
        m for m in run_checks(tags=["compatibility"]) if m.id.startswith("idempotency_jobs.")
    ] == []


@pytest.mark.parametrize(
    "settings, expected",
    [
        ({"TTTL": 5}, ["idempotency_jobs.E001"]),
        ({"STORE": "database", "DATABASE_ALIAS": "nowhere"}, ["idempotency_jobs.E002"]),
        ({"STORE": "redis", "CACHE_ALIAS": "default"}, ["idempotency_jobs.E003"]),
        ({"STORE": "redis", "CACHE_ALIAS": "missing"}, ["idempotency_jobs.E003"]),
        ({"KEY_MIN_LENGTH": 0}, ["idempotency_jobs.E004"]),
        ({"KEY_MIN_LENGTH": 20, "KEY_MAX_LENGTH": 10}, ["idempotency_jobs.E004"]),
        ({"KEY_MAX_LENGTH": 5000}, ["idempotency_jobs.E004"]),
        ({"METHODS": ["POST", "GET"]}, ["idempotency_jobs.E005"]),
        ({"METHODS": ["options"]}, ["idempotency_jobs.E005"]),
        ({"IN_FLIGHT": "queue"}, ["idempotency_jobs.E006"]),
        ({"HEADERS": []}, ["idempotency_jobs.E007"]),
        ({"LEASE": timedelta(hours=25)}, ["idempotency_jobs.W002"]),
        ({"LEASE": 3600, "TTL": 3600}, ["idempotency_jobs.W002"]),
    ],
)
def test_bad_settings_are_reported(settings, expected):
    assert ids(**settings) == expected


def test_checks_run_with_djangos_check_framework():
    with override_settings(IDEMPOTENCY_JOBS={"IN_FLIGHT": "queue", "TTTL": 1}):
        messages = [
            m for m in run_checks(tags=["compatibility"]) if m.id.startswith("idempotency_jobs.")
        ]
    assert {m.id for m in messages} == {"idempotency_jobs.E001", "idempotency_jobs.E006"}
    assert all(isinstance(m, Error) for m in messages)


def test_lease_warning_is_a_warning():
    with override_settings(IDEMPOTENCY_JOBS={"LEASE": timedelta(days=2)}):
        (message,) = check_settings()
    assert isinstance(message, Warning)


def test_valid_redis_configuration_passes():
    assert ids(STORE="redis", CACHE_ALIAS="redis") == []


def test_settings_follow_override_settings():
    assert DEFAULTS["TTL"] == idempotency_settings.TTL
    with override_settings(IDEMPOTENCY_JOBS={"TTL": 60, "REPLAY_STATUS": 409}):
        assert timedelta(seconds=60) == idempotency_settings.TTL
        assert idempotency_settings.REPLAY_STATUS == 409
    assert DEFAULTS["TTL"] == idempotency_settings.TTL
    assert idempotency_settings.REPLAY_STATUS is None


def test_settings_follow_the_pytest_settings_fixture(settings):
    settings.IDEMPOTENCY_JOBS = {"LEASE": 30}
    assert timedelta(seconds=30) == idempotency_settings.LEASE
    settings.IDEMPOTENCY_JOBS = {"LEASE": timedelta(minutes=1)}
    assert timedelta(minutes=1) == idempotency_settings.LEASE


def test_the_store_follows_override_settings():
    with override_settings(IDEMPOTENCY_JOBS={"DATABASE_ALIAS": "other"}):
        store = get_store()
        assert isinstance(store, DatabaseStore)
        assert store.database_alias == "other"
    assert get_store().database_alias == "default"


def test_unknown_setting_name_is_an_attribute_error():
    with pytest.raises(AttributeError):
        idempotency_settings.TTTL  # noqa: B018


def test_bad_import_string_is_improperly_configured():
    with (
        override_settings(IDEMPOTENCY_JOBS={"FINGERPRINT_FUNCTION": "no.such.function"}),
        pytest.raises(ImproperlyConfigured),
    ):
        idempotency_settings.FINGERPRINT_FUNCTION  # noqa: B018


def test_unknown_store_is_a_configuration_error():
    with (
        override_settings(IDEMPOTENCY_JOBS={"STORE": "memcached"}),
        pytest.raises(IdempotencyConfigurationError),
    ):
        get_store()


def test_redis_store_on_a_non_redis_cache_is_a_configuration_error():
    with (
        override_settings(IDEMPOTENCY_JOBS={"STORE": "redis", "CACHE_ALIAS": "default"}),
        pytest.raises(IdempotencyConfigurationError),
    ):
        get_store()


@pytest.mark.parametrize("status", [99, 600, 1000])
def test_decorator_rejects_a_replay_status_that_is_no_http_status(status):
    with pytest.raises(IdempotencyConfigurationError):
        idempotent(replay_status=status)


# Durations: a timedelta, a number of seconds, or a string as ``--older-than`` takes ----------

DURATION_SETTINGS = sorted(DURATIONS)


@pytest.mark.parametrize("name", DURATION_SETTINGS)
@pytest.mark.parametrize(
    "value, expected",
    [
        (timedelta(minutes=3), timedelta(minutes=3)),
        (90, timedelta(seconds=90)),
        (1.5, timedelta(seconds=1.5)),
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
    ],
)
def test_every_duration_setting_takes_a_timedelta_seconds_or_a_string(name, value, expected):
    with override_settings(IDEMPOTENCY_JOBS={name: value}):
        assert getattr(idempotency_settings, name) == expected
        assert [m.id for m in check_settings() if m.id != "idempotency_jobs.W002"] == []


def test_a_ttl_written_as_for_older_than_passes_the_check():
    """Was a TypeError in ``manage.py check`` (the LEASE < TTL comparison)."""
    with override_settings(IDEMPOTENCY_JOBS={"TTL": "24h"}):
        assert idempotency_messages() == []
        assert timedelta(hours=24) == idempotency_settings.TTL


@pytest.mark.parametrize("name", DURATION_SETTINGS)
@pytest.mark.parametrize("value", ["24 hours", "abc", "2w", "1.5h", "", [5], None, True])
def test_an_unreadable_duration_is_a_check_error_not_a_crash(name, value):
    with override_settings(IDEMPOTENCY_JOBS={name: value}):
        messages = [m for m in check_settings() if m.id == "idempotency_jobs.E008"]
        assert len(messages) == 1, messages
        assert isinstance(messages[0], Error)
        assert f"IDEMPOTENCY_JOBS[{name!r}]" in messages[0].msg
        assert "24h" in messages[0].msg  # names the formats it takes
        with pytest.raises(ImproperlyConfigured, match=name):
            getattr(idempotency_settings, name)


@pytest.mark.parametrize("name", sorted(DURATIONS - {"JOB_PROGRESS_INTERVAL"}))
@pytest.mark.parametrize("value", [-5, 0, 0.0, "0s", "0h", timedelta(0), timedelta(seconds=-1)])
def test_a_duration_that_is_not_positive_is_a_check_error(name, value):
    with override_settings(IDEMPOTENCY_JOBS={name: value}):
        (message,) = [m for m in check_settings() if m.id != "idempotency_jobs.W002"]
    assert message.id == "idempotency_jobs.E009"
    assert isinstance(message, Error)
    assert f"IDEMPOTENCY_JOBS[{name!r}] must be longer than zero" in message.msg


def test_a_negative_lease_is_reported_and_not_compared():
    with override_settings(IDEMPOTENCY_JOBS={"LEASE": -5}):
        assert [m.id for m in idempotency_messages()] == ["idempotency_jobs.E009"]


def test_the_progress_interval_may_be_zero_but_not_negative():
    """Zero: every progress report is written (no least gap), as some tests want."""
    assert ids(JOB_PROGRESS_INTERVAL=0) == []
    assert ids(JOB_PROGRESS_INTERVAL=-1) == ["idempotency_jobs.E009"]


def test_the_manage_py_check_command_reports_duration_mistakes():
    with (
        override_settings(IDEMPOTENCY_JOBS={"TTL": "24 hours", "LEASE": -5}),
        pytest.raises(SystemCheckError) as raised,
    ):
        call_command("check", "--tag", "compatibility")
    text = str(raised.value)
    assert "idempotency_jobs.E008" in text and "idempotency_jobs.E009" in text


# The decorator's place: below @api_view and on either side of @action -----------------------


def test_the_decorator_above_api_view_is_an_error_at_import_naming_the_fix():
    """Was a 500 (IndexError in drf.py) on every request, after a clean ``manage.py check``."""
    with pytest.raises(IdempotencyConfigurationError, match="below @api_view") as raised:

        @idempotent
        @api_view(["POST"])
        def create_letter(request):
            return Response(status=201)

    assert "create_letter" in str(raised.value)


def test_the_decorator_with_options_above_api_view_is_an_error_too():
    with pytest.raises(IdempotencyConfigurationError, match="below @api_view"):

        @idempotent(required=True)
        @api_view(["POST"])
        def create_letter(request):
            return Response(status=201)


def test_the_decorator_on_a_view_made_by_as_view_is_an_error():
    with pytest.raises(IdempotencyConfigurationError, match="IdempotencyMixin"):
        idempotent(APIView.as_view())


def test_the_decorator_on_a_plain_django_view_is_a_clear_error_not_an_index_error():
    @idempotent
    def plain(request):
        return HttpResponse(status=201)

    with pytest.raises(IdempotencyConfigurationError, match="@api_view"):
        plain(RequestFactory().post("/plain", HTTP_IDEMPOTENCY_KEY="key-0000000001"))


@CORE_DB
@pytest.mark.parametrize("place", ["below", "above"])
def test_the_decorator_works_on_either_side_of_action(api, place):
    path = f"/action-order/{place}/"
    first = post(api, path)
    replay = post(api, path)
    assert_executed(first)
    assert is_replay(replay) and replay.content == first.content
    assert widgets() == 1
