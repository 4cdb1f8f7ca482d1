"""What every key store promises the request flow."""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import timedelta

from ..responses import StoredResponse

__all__ = ["Claim", "Existing", "Store", "new_token"]


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


def new_token() -> str:
    return secrets.token_hex(16)


class Store(ABC):
    """A place to claim keys atomically and keep their outcome.

    ``database_alias`` names the database whose transaction wraps the view.
    """

    database_alias: str = "default"

    @abstractmethod
    def claim(
        self, scope: str, key: str, fingerprint: str, *, ttl: timedelta, lease: timedelta
    ) -> Claim | Existing:
        """Claim the key, or report what holds it. Raises ``IdempotencyStoreUnavailable``."""

    @abstractmethod
    def complete(self, claim: Claim, response: StoredResponse, *, last: bool = False) -> None:
        """Store the outcome. Raises ``IdempotencyLeaseLost`` if the claim is no longer ours.

        ``last``: nothing follows in the view's transaction but its commit, which a store may
        then send along with its own write (the ``atomic`` block finds nothing left to commit).
        """

    @abstractmethod
    def after_commit(self, claim: Claim, response: StoredResponse) -> None:
        """The transaction in which ``complete`` ran has committed: a store outside that
        database records the outcome now. Runs ahead of the view's own ``on_commit`` hooks."""

    @abstractmethod
    def release(self, claim: Claim) -> None:
        """Free the key so a retry runs for real: a compare-and-delete on the owner token and
        the ``in_progress`` state, so a claim no longer ours, or completed, is left alone."""
