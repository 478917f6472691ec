"""Timeliness of partitions against a dataset's SLA: pure functions, no Dagster.

A partition is *due* ``sla.deadline`` after its window closes and is *late-warned* from
``sla.warn_after``. At any moment the partitions that matter are the latest one whose deadline
has passed and every closed partition after it (still within their deadline); the worst of their
states is the dataset's timeliness.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from ingest_assets.spec import SlaSpec

Status = Literal["pass", "warn", "fail"]
_RANK: dict[Status, int] = {"pass": 0, "warn": 1, "fail": 2}


@dataclass(frozen=True)
class PartitionTimeliness:
    """One partition against its deadline.

    Attributes:
        partition: The partition key.
        closed_at: When its window closed.
        warn_at: Its early-warning point, if the SLA has one.
        due_at: Its deadline.
        landed_at: When it was first loaded, or None.
        status: 'pass' (landed, or not yet due), 'warn' (missing past the warning point) or
            'fail' (missing past the deadline).
    """

    partition: str
    closed_at: datetime
    warn_at: datetime | None
    due_at: datetime
    landed_at: datetime | None
    status: Status

    def describe(self) -> str:
        """What a user needs to know, in one sentence."""
        if self.landed_at is not None:
            late = self.landed_at - self.due_at
            when = f"late by {late}" if late > timedelta(0) else "on time"
            return f"partition {self.partition} landed at {self.landed_at.isoformat()} ({when})"
        if self.status == "fail":
            return (
                f"partition {self.partition} has not landed and was due at "
                f"{self.due_at.isoformat()}: load it (backfill the partition) or find out why "
                "its source is late"
            )
        if self.status == "warn":
            return (
                f"partition {self.partition} has not landed yet; it is due at "
                f"{self.due_at.isoformat()}"
            )
        return f"partition {self.partition} is due at {self.due_at.isoformat()}"


def partition_timeliness(
    partition: str, closed_at: datetime, landed_at: datetime | None, now: datetime, sla: SlaSpec
) -> PartitionTimeliness:
    """Judge one partition at ``now``."""
    due_at = closed_at + timedelta(minutes=sla.deadline_minutes)
    warn = sla.warn_minutes
    warn_at = None if warn is None else closed_at + timedelta(minutes=warn)
    status: Status
    if landed_at is not None or now < (warn_at or due_at):
        status = "pass"
    elif now < due_at:
        status = "warn"
    else:
        status = "fail"
    return PartitionTimeliness(partition, closed_at, warn_at, due_at, landed_at, status)


@dataclass(frozen=True)
class Timeliness:
    """A dataset's timeliness at one moment.

    Attributes:
        status: The worst status of the partitions judged.
        partitions: The partitions judged, latest first.
    """

    status: Status
    partitions: list[PartitionTimeliness]

    @property
    def worst(self) -> PartitionTimeliness | None:
        """The latest partition with the overall status."""
        return next((p for p in self.partitions if p.status == self.status), None)

    def describe(self) -> str:
        """One sentence about the partition that decides the status."""
        worst = self.worst
        return worst.describe() if worst else "no partition has closed yet"


def judge(
    closed: Sequence[tuple[str, datetime]],
    landed: Mapping[str, datetime],
    now: datetime,
    sla: SlaSpec,
) -> Timeliness:
    """Judge the partitions that matter at ``now``.

    Args:
        closed: Closed partitions, latest first, as (key, closed_at); the sequence may go back
            further than needed.
        landed: When each landed partition was first loaded.
        now: The moment of judgement.
        sla: The dataset's SLA.
    """
    judged: list[PartitionTimeliness] = []
    for partition, closed_at in closed:
        verdict = partition_timeliness(partition, closed_at, landed.get(partition), now, sla)
        judged.append(verdict)
        if now >= verdict.due_at:  # the latest partition already due: older ones do not matter
            break
    status: Status = "pass"
    for verdict in judged:
        if _RANK[verdict.status] > _RANK[status]:
            status = verdict.status
    return Timeliness(status, judged)
