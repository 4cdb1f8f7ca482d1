"""The key store contract: what every store promises the request flow.

A store is one class. ``IDEMPOTENCY_JOBS["STORE"]`` names it (``"database"``, ``"redis"`` or
the dotted path of a :class:`Store` subclass); :func:`idempotency_jobs.keys.stores.get_store` builds
it once per configuration with :meth:`Store.from_settings`, and ``manage.py check`` runs its
:meth:`Store.check`. Nothing else in the package needs to know which store it talks to: what
differs between stores is declared by the capability attributes below. See docs/stores.md.
"""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.core.checks import CheckMessage

from idempotency_jobs.keys.responses import StoredResponse

__all__ = [
    "Claim",
    "Existing",
    "LeaseLost",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "new_token",
    "unavailable_on",
]


@dataclass(frozen=True, slots=True)
class Claim:
    """This request owns the key until it completes, releases, or its lease runs out."""

    scope: str
    key: str
    fingerprint: str
    token: str
    record_id: int | None = None


@dataclass(frozen=True, slots=True)
class Existing:
    """Another request holds or held the key."""

    fingerprint: str
    completed: bool
    response: StoredResponse | None = None


class StoreError(Exception):
    """Base of the errors a store raises; the request flow answers each with a problem."""


class StoreUnavailable(StoreError):
    """The store cannot be reached (or did not answer in time): nothing was run."""


class LeaseLost(StoreError):
    """The claim is no longer this request's: its lease ran out and a retry took the key."""


@contextmanager
def unavailable_on(*errors: type[BaseException]) -> Iterator[None]:
    """Raise :class:`StoreUnavailable` (from the original) for any of ``errors``: a store's
    client errors that mean "cannot reach it", as opposed to a bug."""
    try:
        yield
    except errors as exc:
        raise StoreUnavailable(str(exc)) from exc


def new_token() -> str:
    return secrets.token_hex(16)


class Store(ABC):
    """A place to claim keys atomically and keep their outcome.

    **The claim state machine.** A record is absent, ``in_progress`` (an owner token and a
    lease) or ``completed`` (the stored outcome). Every store implements exactly these
    transitions (the database store in SQL, the Redis store in Lua):

    - :meth:`claim` on no record, or on one past its TTL: a new ``in_progress`` record with a
      fresh owner token and lease (a key past its TTL starts a new life) -> :class:`Claim`;
    - :meth:`claim` on ``in_progress`` whose lease has ended, same fingerprint: taken over
      (fresh token and lease; the old owner's token no longer matches) -> :class:`Claim`;
    - :meth:`claim` on any other ``in_progress`` -> ``Existing(completed=False)``: the request
      flow answers 409 (in flight) or 422 (another fingerprint);
    - :meth:`claim` on ``completed`` -> ``Existing(completed=True, response=...)``: a replay, or
      422 for another fingerprint;
    - :meth:`complete` with the owner token on ``in_progress`` -> ``completed``; on anything
      else it raises :class:`LeaseLost` and changes nothing;
    - :meth:`release` with the owner token on ``in_progress`` -> no record; on anything else
      it changes nothing.

    Every change is a compare-and-set on the owner token *and* the state, so that a request
    whose lease was taken over can neither overwrite nor delete the new owner's record, and a
    completed record is never freed, even by its owner (docs/semantics.md, "Leases and owner
    tokens"). Errors reaching the store are raised as :class:`StoreUnavailable`, a lost claim
    as :class:`LeaseLost`; the request flow turns them into problem responses.

    What differs between stores is declared by the capability attributes below: a store says
    what it does, the request flow and the commands ask.
    """

    #: The database whose transaction wraps the view (and, for the database store, holds the
    #: keys).
    database_alias: str = "default"
    #: ``complete`` writes the outcome inside the view's transaction, so it commits with the
    #: view's writes or not at all; ``False``: the outcome is written by ``after_commit``.
    completes_in_view_transaction: ClassVar[bool] = True
    #: Records vanish at the end of their TTL by themselves: ``purge`` has nothing to do.
    expires_natively: ClassVar[bool] = False

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Any) -> Store:
        """The store described by ``IDEMPOTENCY_JOBS`` (``idempotency_settings``)."""

    @classmethod
    def check(cls, settings: Any) -> list[CheckMessage]:
        """System check messages for this store's configuration (``manage.py check``); run
        without building the store, so a misconfiguration is reported, not raised."""
        return []

    @abstractmethod
    def claim(
        self, scope: str, key: str, fingerprint: str, *, ttl: timedelta, lease: timedelta
    ) -> Claim | Existing:
        """Claim the key, or report what holds it (the state machine above)."""

    @abstractmethod
    def complete(self, claim: Claim, response: StoredResponse) -> None:
        """Store the outcome (or, for a store that does not complete in the view's
        transaction, check the claim is still ours). Raises :class:`LeaseLost`."""

    def complete_and_commit(self, claim: Claim, response: StoredResponse) -> bool:
        """The completion, when nothing follows it in the view's outermost transaction but the
        COMMIT: a store may send that COMMIT along with its own write, one round trip instead
        of two. Returns whether it committed (then the ``atomic`` block finds nothing left to
        commit); by default it only completes."""
        self.complete(claim, response)
        return False

    @abstractmethod
    def after_commit(self, claim: Claim, response: StoredResponse) -> None:
        """The transaction in which ``complete`` ran has committed: a store outside that
        database records the outcome now. Runs ahead of the view's own ``on_commit`` hooks."""

    @abstractmethod
    def release(self, claim: Claim) -> None:
        """Free the key so a retry runs for real: a compare-and-delete on the owner token and
        the ``in_progress`` state, so a claim no longer ours, or completed, is left alone."""

    def purge(
        self,
        *,
        older_than: timedelta | None,
        now: datetime,
        batch_size: int,
        dry_run: bool = False,
    ) -> Iterator[int]:
        """Delete records past their TTL (or created longer than ``older_than`` ago), never a
        live ``in_progress`` claim, in batches of ``batch_size``; yields the running total after
        each batch (with ``dry_run``, once: the count that would go). A store that
        ``expires_natively`` needs none of it."""
        if not self.expires_natively:
            raise NotImplementedError(f"{type(self).__name__} must implement purge()")
        yield 0
