"""docs/observability.md: each idempotency outcome sends its signal once, with the documented
arguments, and writes one line on the ``idempotency_jobs.outcomes`` logger; jobs send
``job_started`` and ``job_finished``."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from idempotency_jobs import signals
from idempotency_jobs.jobs.recovery import recover_jobs
from idempotency_jobs.jobs.tasks import execute_job
from idempotency_jobs.models import IdempotencyKey, Job
from tests.helpers import (
    BODY,
    CORE_DB,
    DECORATOR,
    KEY,
    MIXIN,
    REDIS_LEASE,
    TWO_FACES,
    Background,
    assert_executed,
    assert_problem,
    configure,
    in_flight,
    is_replay,
    post,
    widgets,
)
from tests.testapp import views
from tests.testapp.views import Failures, Gate

pytestmark = CORE_DB

KEY_SIGNALS = {
    "key_replayed": signals.key_replayed,
    "key_in_use": signals.key_in_use,
    "key_mismatch": signals.key_mismatch,
    "key_lease_lost": signals.key_lease_lost,
}
VIEW_CLASSES = {MIXIN: views.WidgetViewSet, DECORATOR: views.widget_function.cls}


@contextmanager
def received(*watched: Signal) -> Iterator[list[tuple[Signal, dict[str, Any]]]]:
    """Every send of ``watched`` (default: the four key signals), as (signal, kwargs)."""
    calls: list[tuple[Signal, dict[str, Any]]] = []
    receivers = []
    for signal in watched or KEY_SIGNALS.values():

        def receiver(sender: Any, _signal: Signal = signal, **kwargs: Any) -> None:
            kwargs.pop("signal")
            if "job" in kwargs:  # the job as the receiver saw it (the worker changes it later)
                kwargs["seen"] = (kwargs["job"].status, kwargs["job"].attempts)
            calls.append((_signal, {"sender": sender, **kwargs}))

        signal.connect(receiver, weak=False)
        receivers.append((signal, receiver))
    try:
        yield calls
    finally:
        for signal, receiver in receivers:
            signal.disconnect(receiver)


@pytest.fixture
def outcomes(caplog: pytest.LogCaptureFixture) -> Any:
    """The outcome lines logged so far, as (outcome, record)."""
    caplog.set_level(logging.INFO, logger="idempotency_jobs.outcomes")

    def lines() -> list[tuple[str, logging.LogRecord]]:
        return [
            (record.outcome, record)  # type: ignore[attr-defined]
            for record in caplog.records
            if record.name == "idempotency_jobs.outcomes"
        ]

    return lines


def names(lines: list[tuple[str, logging.LogRecord]]) -> list[str]:
    return [outcome for outcome, _ in lines]


def assert_key_kwargs(kwargs: dict[str, Any], path: str) -> None:
    assert kwargs["sender"] is VIEW_CLASSES[path]
    assert isinstance(kwargs["view"], VIEW_CLASSES[path])
    assert kwargs["request"].path.startswith(path)
    assert kwargs["key"] == KEY
    assert kwargs["scope"].startswith("auth.user:")


# --- the key signals ------------------------------------------------------------------------


@TWO_FACES
def test_a_first_request_logs_completed_and_sends_no_key_signal(api, store, path, outcomes):
    with received() as calls:
        assert_executed(post(api, path))
    assert calls == []
    [(outcome, record)] = outcomes()
    assert outcome == "completed"
    assert record.levelno == logging.INFO
    assert record.status_code == 201  # type: ignore[attr-defined]
    assert record.key == KEY  # type: ignore[attr-defined]
    assert record.scope.startswith("auth.user:")  # type: ignore[attr-defined]
    message = record.getMessage()
    assert "completed" in message and repr(KEY) in message and record.scope in message  # type: ignore[attr-defined]


@TWO_FACES
def test_a_replay_sends_key_replayed_once(api, store, path, outcomes):
    first = post(api, path)
    with received() as calls:
        replay = post(api, path)
    assert is_replay(replay)
    [(signal, kwargs)] = calls
    assert signal is signals.key_replayed
    assert_key_kwargs(kwargs, path)
    assert kwargs["response"] is replay or kwargs["response"].content == first.content
    assert kwargs["response"].status_code == 201
    assert names(outcomes()) == ["completed", "replayed"]
    assert outcomes()[1][1].status_code == 201


@TWO_FACES
def test_an_in_flight_409_sends_key_in_use_once(api, store, path, outcomes):
    with in_flight(path) as first:
        with received() as calls:
            assert_problem(post(api, f"{path}?gate=g"), 409, "idempotency_key_in_use")
        [(signal, kwargs)] = calls
        assert signal is signals.key_in_use
        assert_key_kwargs(kwargs, path)
        assert names(outcomes()) == ["in_use"]
    assert_executed(first.result())
    assert names(outcomes()) == ["in_use", "completed"]


@TWO_FACES
def test_a_mismatch_422_sends_key_mismatch_once(api, store, path, outcomes):
    post(api, path)
    with received() as calls:
        assert_problem(post(api, path, body={"name": "x"}), 422, "idempotency_key_mismatch")
    [(signal, kwargs)] = calls
    assert signal is signals.key_mismatch
    assert_key_kwargs(kwargs, path)
    assert names(outcomes()) == ["completed", "mismatch"]
    assert outcomes()[1][1].levelno == logging.WARNING


@TWO_FACES
def test_a_replay_the_retry_does_not_accept_logs_not_acceptable(api, store, path, outcomes):
    post(api, path)
    with received() as calls:
        refused = post(api, path, HTTP_ACCEPT="text/html")
    assert_problem(refused, 406, "idempotency_replay_not_acceptable")
    assert calls == []
    assert names(outcomes()) == ["completed", "not_acceptable"]
    assert outcomes()[1][1].status_code == 406  # type: ignore[attr-defined]


def expire_leases(store: str) -> None:
    if store == "redis":
        time.sleep(REDIS_LEASE + 0.2)
    else:
        IdempotencyKey.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))


@TWO_FACES
def test_a_lost_lease_sends_key_lease_lost_once(api, settings, store, path, outcomes):
    if store == "redis":
        configure(settings, LEASE=REDIS_LEASE)
    with received() as calls:
        with in_flight(path) as old:
            expire_leases(store)
            assert_executed(post(api, f"{path}?gate=g"))  # takes the key over
        assert_problem(old.result(), 409, "idempotency_lease_lost")
    [(signal, kwargs)] = calls
    assert signal is signals.key_lease_lost
    assert_key_kwargs(kwargs, path)
    assert names(outcomes()) == ["completed", "lease_lost"]
    assert outcomes()[1][1].levelno == logging.WARNING


def test_a_lease_lost_while_storing_a_client_error_is_lease_lost_not_released(
    api, settings, store, outcomes
):
    """A DRF error's answer is stored after the view's transaction (``store_4xx``): losing the
    lease there is a lost lease too, and the request released nothing."""
    if store == "redis":
        configure(settings, LEASE=REDIS_LEASE)
    path = "/view-widgets?gate=g&fail=validation"  # @idempotent(store_4xx=True)
    held = Gate("g")
    with received() as calls:
        old = Background(lambda client: post(client, path))
        try:
            assert held.entered.wait(timeout=20), "the first request never reached its view"
            expire_leases(store)
            assert post(api, path).status_code == 400  # takes the key over, stores its 400
        finally:
            held.opened.set()
        assert_problem(old.result(), 409, "idempotency_lease_lost")
    assert [signal for signal, _ in calls] == [signals.key_lease_lost]
    assert names(outcomes()) == ["completed", "lease_lost"]


@pytest.mark.parametrize("failure", ["500", "runtime"])
def test_a_freed_key_logs_released(api, store, failure, outcomes):
    Failures.armed.append(failure)
    api.raise_request_exception = False
    with received() as calls:
        response = post(api)
    assert response.status_code == 500
    assert calls == []
    [(outcome, record)] = outcomes()
    assert outcome == "released"
    assert record.key == KEY  # type: ignore[attr-defined]
    assert_executed(post(api))  # the retry runs for real
    assert names(outcomes()) == ["released", "completed"]


def test_a_completed_key_that_cannot_be_replayed_logs_not_replayable(api, store, outcomes):
    assert_executed(post(api, f"{MIXIN}stream/"))
    with received() as calls:
        assert_problem(post(api, f"{MIXIN}stream/"), 409, "idempotency_key_not_replayable")
    assert calls == []
    assert names(outcomes()) == ["completed", "not_replayable"]


def test_a_request_without_a_key_logs_nothing(api, store, outcomes):
    with received() as calls:
        assert_executed(post(api, key=None))
    assert calls == [] and outcomes() == []


def test_a_receiver_that_raises_never_changes_the_answer(api, store, outcomes):
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("metrics backend down")

    first = post(api)
    signals.key_replayed.connect(broken, weak=False)
    try:
        replay = post(api)
    finally:
        signals.key_replayed.disconnect(broken)
    assert is_replay(replay) and replay.content == first.content


# --- the job signals ------------------------------------------------------------------------


def new_job(**params: Any) -> Job:
    return Job.objects.create(kind="widget_batch", owner="auth.user:1", params=params)


@pytest.mark.parametrize(
    "params, status, error",
    [
        ({"names": ["a", "b"]}, Job.Status.SUCCEEDED, None),
        ({"names": ["a", "b"], "fail_at": 1}, Job.Status.FAILED, "job_failed"),
        ({"names": ["a", "b"], "crash_at": 0}, Job.Status.FAILED, "job_crashed"),
    ],
)
def test_a_job_run_sends_job_started_then_job_finished(params, status, error):
    job = new_job(**params)
    with received(signals.job_started, signals.job_finished) as calls:
        assert execute_job(str(job.pk)) == status
    assert [signal for signal, _ in calls] == [signals.job_started, signals.job_finished]
    started, finished = calls[0][1], calls[1][1]
    assert started["sender"] is Job and started["job"].pk == job.pk
    assert started["seen"] == (Job.Status.RUNNING, 1)
    assert finished["sender"] is Job and finished["job"].pk == job.pk
    assert finished["status"] == status == finished["job"].status
    assert (finished["job"].error or {}).get("code") == error


def test_a_delivery_that_finds_nothing_to_do_sends_nothing():
    job = new_job(names=["a"])
    execute_job(str(job.pk))
    with received(signals.job_started, signals.job_finished) as calls:
        assert execute_job(str(job.pk)) == "skipped"  # a duplicate delivery
    assert calls == []


def test_recovery_giving_up_sends_job_finished(settings):
    configure(settings, JOB_MAX_ATTEMPTS=1)
    job = new_job(names=["a"])
    Job.objects.claim(job.pk, token="dead" * 8, lease=timedelta(minutes=1))  # then it died
    with received(signals.job_finished) as calls:
        assert recover_jobs(now=timezone.now() + timedelta(minutes=2)).failed == [str(job.pk)]
    [(_, finished)] = calls
    assert finished["status"] == Job.Status.FAILED
    assert finished["job"].error["code"] == "job_attempts_exhausted"


def test_a_body_is_never_in_the_log_line(api, store, outcomes):
    post(api, body={**BODY, "name": "secret-name"})
    [(_, record)] = outcomes()
    assert "secret-name" not in record.getMessage()


def test_cancelling_a_queued_job_sends_job_finished_and_retrying_sends_nothing():
    job = new_job(names=["a"])
    with received(signals.job_started, signals.job_finished) as calls:
        assert job.cancel()
        assert not job.cancel()  # already failed: nothing happens, nothing is sent
        [(signal, finished)] = calls
        assert signal is signals.job_finished
        assert finished["status"] == Job.Status.FAILED
        assert finished["job"].error["code"] == "job_cancelled"
        assert job.retry()  # queued again; job_started comes with the worker's claim
    assert len(calls) == 1


@TWO_FACES
def test_completed_is_logged_once_with_atomic_requests(api, atomic_requests, store, path, outcomes):
    """The outcome commits with the request's transaction; so does its log line."""
    assert_executed(post(api, path))
    assert is_replay(post(api, path))
    assert names(outcomes()) == ["completed", "replayed"]


@TWO_FACES
def test_an_outcome_rolled_back_after_its_view_is_never_logged(api, store, path, outcomes):
    """The log line waits for the commit of the outermost transaction: here the caller's own
    block, which rolls back after the view answered."""
    with transaction.atomic():
        assert_executed(post(api, path))
        transaction.set_rollback(True)
    assert "completed" not in names(outcomes())
    assert widgets() == 0
