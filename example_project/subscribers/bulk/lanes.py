"""An import's stages: one on this connection, or one per lane, each lane a thread with its
own PostgreSQL connection (and so its own temporary stage), to upsert over several connections.

Rows are dealt to the lanes by their email's hash: an email's duplicates land in the same
lane (each lane finds its own), and two lanes never write the same subscriber. The rows
without an email (blank, ragged, invalid) go to the first lane. A range of row numbers is
upserted by every lane at once, each in its own transaction; their counts are added up and
their row errors merged in row order.

Lanes need the rows of each range to be committed when it ends: inside an outer transaction
(as in most tests) the import keeps to one connection.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction

from example_project.conf import setting

from .shared import Chunk, RowError
from .stage import Stage, Tally

if TYPE_CHECKING:
    from .shared import ImportPlan

__all__ = ["Lanes"]


class Lanes:
    """The stage of each lane, each used only from its lane's thread."""

    def __init__(self, count: int) -> None:
        self.threads = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="subscriber-import")
            for _ in range(count if count > 1 else 0)
        ]
        self.stages: list[Stage] = []
        self.loading: list[Future[None]] = []

    @staticmethod
    def count() -> int:
        """How many connections an import on this connection uses."""
        if connection.vendor != "postgresql" or connection.in_atomic_block:
            return 1
        return max(1, int(setting("SUBSCRIBER_IMPORT_CONNECTIONS")))

    @classmethod
    @contextlib.contextmanager
    def opened(cls, plan: ImportPlan) -> Iterator[Lanes]:
        """New, empty stages for ``plan``; dropped, and the lanes' connections closed, on the
        way out."""
        lanes = cls(cls.count())
        try:
            lanes.stages = lanes._each(lambda: Stage.new(plan), [()])
            yield lanes
        finally:
            with contextlib.suppress(Exception):  # the error that got us here is raised
                lanes._wait(lanes.loading)
            lanes.loading = []
            if lanes.stages:
                lanes._each(lambda stage: stage.drop(), lanes._stages())
            if lanes.threads:  # a lane's temporary stage goes with its connection anyway
                lanes._each(lambda: connection.close(), [()])
            for thread in lanes.threads:
                thread.shutdown()

    def load(self, chunk: Chunk) -> None:
        """Stage a slice of rows; on several lanes, while the next slice is read."""
        if not self.threads:
            self.stages[0].load(chunk)
            return
        parts = _dealt(chunk, len(self.threads))
        prepared = [stage.prepared(part) for stage, part in zip(self.stages, parts, strict=True)]
        self._wait(self.loading)
        self.loading = [
            thread.submit(stage.write, rows)
            for thread, stage, rows in zip(self.threads, self.stages, prepared, strict=True)
        ]

    def mark_duplicates(self) -> None:
        self._each(lambda stage: stage.mark_duplicates(), self._stages())

    def apply(self, workspace_id: int, start: int, stop: int, now: datetime) -> Tally:
        """Upsert rows ``start`` to ``stop`` (excluded), each lane in its own transaction."""

        def apply(stage: Stage) -> Tally:
            with transaction.atomic():
                return stage.apply(workspace_id, start, stop, now)

        tallies = self._each(apply, self._stages())
        return Tally(*map(sum, zip(*tallies, strict=True)))

    def errors(self, start: int, stop: int, limit: int) -> list[RowError]:
        found = self._each(lambda stage: stage.errors(start, stop, limit), self._stages())
        return list(itertools.islice(heapq.merge(*found), limit))

    def _stages(self) -> list[tuple[Stage]]:
        return [(stage,) for stage in self.stages]

    def _each(self, call: Callable[..., Any], arguments: list[tuple[Any, ...]]) -> list[Any]:
        """``call`` on every lane, with that lane's arguments (the same ones if only one is
        given); the first error once all have finished."""
        if not self.threads:
            return [call(*arguments[0])]
        self._wait(self.loading)
        arguments = arguments * len(self.threads) if len(arguments) == 1 else arguments
        return self._wait(
            [
                thread.submit(call, *lane_arguments)
                for thread, lane_arguments in zip(self.threads, arguments, strict=True)
            ]
        )

    @staticmethod
    def _wait(futures: list[Future[Any]]) -> list[Any]:
        wait(futures)
        return [future.result() for future in futures]


def _dealt(chunk: Chunk, count: int) -> list[Chunk]:
    """The chunk split into ``count``, each candidate by its email's hash."""
    lanes = [hash(email) % count for email in chunk.emails]
    parts = []
    for lane in range(count):
        kept = [candidate_lane == lane for candidate_lane in lanes]

        def picked(cells: Iterable[Any], kept: list[bool] = kept) -> list[Any]:
            return list(itertools.compress(cells, kept))

        parts.append(
            Chunk(
                chunk.end,
                picked(chunk.numbers),
                picked(chunk.emails),
                [picked(cells) for cells in chunk.values],
                picked(chunk.too_long) if chunk.too_long else None,
                chunk.rejected if lane == 0 else [],
            )
        )
    return parts
