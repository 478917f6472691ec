"""When partitions load (schedules, landing sensors) and when they must have landed (SLA)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from ingest_assets.spec.base import Strict, discriminator


def _hh_mm(value: str) -> tuple[int, int] | None:
    """Parse 'HH:MM' (any number of hours, minutes under 60), or None if it is not that."""
    hours, _, minutes = value.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and int(minutes) < 60):
        return None
    return int(hours), int(minutes)


def _minutes(value: str) -> int:
    """A validated 'HH:MM' as minutes."""
    parsed = _hh_mm(value)
    assert parsed is not None
    return parsed[0] * 60 + parsed[1]


def _check_cron(value: str) -> str:
    if len(value.split()) != 5:
        raise ValueError(f"{value!r} is not a five-field cron expression such as '15 2 * * *'")
    return value


class ScheduleTrigger(Strict):
    """Load each partition on a schedule, a fixed delay after its window closes."""

    type: Literal["schedule"] = Field(default="schedule", description="'schedule'.")
    delay: str = Field(
        default="00:00",
        json_schema_extra={"pattern": r"^\d{1,2}:\d{2}$"},
        description="How long after a partition's window closes its run starts, as HH:MM "
        "(e.g. '02:15': a daily partition loads at 02:15 the next day).",
    )
    cron: str | None = Field(
        default=None,
        description="An explicit cron schedule instead; each tick loads the latest closed "
        "partition.",
    )
    running: bool = Field(
        default=False, description="Whether the schedule starts running when deployed."
    )

    @field_validator("delay")
    @classmethod
    def _delay(cls, value: str) -> str:
        parsed = _hh_mm(value)
        if parsed is None or parsed[0] >= 24:
            raise ValueError(f"{value!r} is not a time of day such as '02:15'")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else _check_cron(value)

    @property
    def delay_minutes(self) -> int:
        """The delay in minutes."""
        return _minutes(self.delay)


class LandingTrigger(Strict):
    """Load partitions as their objects land: a sensor watches the object store.

    Every new object, and every object overwritten with new content, requests one run of the
    partition its key maps to; objects of one partition found in one tick share a run.
    """

    type: Literal["landing"] = Field(description="'landing'.")
    settle_seconds: float = Field(
        default=60,
        ge=0,
        description="An object is picked up only once it has not changed for this long, so "
        "files still being written are left for a later tick.",
    )
    lookback_seconds: float = Field(
        default=900,
        ge=1,
        description="Safety margin for objects that become visible after their modification "
        "time (slow uploads, clock skew between the store and the code location).",
    )
    interval_seconds: int = Field(
        default=30, ge=5, description="Minimum time between two sensor ticks."
    )
    max_keys_per_tick: int = Field(
        default=100_000,
        ge=1,
        description="Keys listed per tick at most; a longer listing continues next tick.",
    )
    max_seconds_per_tick: float = Field(
        default=8,
        gt=0,
        le=50,
        description="Time spent listing per tick at most (sensor ticks time out at 60 s); "
        "the listing continues next tick.",
    )
    running: bool = Field(
        default=False, description="Whether the sensor starts running when deployed."
    )


class ArrivalTrigger(Strict):
    """Load partitions as entries arrive on a stream: a sensor reads on from its cursor.

    The cursor is the ID of the last entry read, so a tick never skips an entry and a restarted
    sensor resumes where it stopped. Entries of a partition found in one tick request one run
    (its key names the last entry, so the same tick evaluated twice asks for the same run);
    entries of a partition still open wait in the cursor until it closes, and entries that
    arrive after their partition loaded request it again.
    """

    type: Literal["arrival"] = Field(description="'arrival'.")
    interval_seconds: int = Field(
        default=30, ge=5, description="Minimum time between two sensor ticks."
    )
    max_entries_per_tick: int = Field(
        default=100_000,
        ge=1,
        description="Entries read per tick at most; the rest are read next tick.",
    )
    running: bool = Field(
        default=False, description="Whether the sensor starts running when deployed."
    )


#: A dataset's trigger; ``type`` picks it and defaults to ``schedule``.
Trigger = Annotated[
    Annotated[ScheduleTrigger, Tag("schedule")]
    | Annotated[LandingTrigger, Tag("landing")]
    | Annotated[ArrivalTrigger, Tag("arrival")],
    Discriminator(discriminator("type", "schedule")),
]


class SlaSpec(Strict):
    """When each partition must have landed, counted from the moment its window closes."""

    deadline: str = Field(
        json_schema_extra={"pattern": r"^\d{1,3}:[0-5]\d$"},
        description="How long after a partition closes it must have landed, as HH:MM; hours may "
        "exceed 24 ('26:00': by 02:00 on the second day).",
    )
    warn_after: str | None = Field(
        default=None,
        json_schema_extra={"pattern": r"^\d{1,3}:[0-5]\d$"},
        description="The early-warning point, as HH:MM after the partition closes (before the "
        "deadline).",
    )
    check_cron: str = Field(
        default="*/15 * * * *",
        description="When the timeliness check runs (cron, in the partitioning's time zone).",
    )
    running: bool = Field(
        default=False, description="Whether the check's schedule runs as soon as it is deployed."
    )

    @field_validator("deadline", "warn_after")
    @classmethod
    def _offset(cls, value: str | None) -> str | None:
        if value is not None and _hh_mm(value) is None:
            raise ValueError(f"{value!r} is not a duration as HH:MM such as '02:00'")
        return value

    @field_validator("check_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _check_cron(value)

    @model_validator(mode="after")
    def _order(self) -> SlaSpec:
        warn = self.warn_minutes
        if warn is not None and warn >= self.deadline_minutes:
            raise ValueError(
                f"warn_after {self.warn_after!r} must come before deadline {self.deadline!r}"
            )
        return self

    @property
    def deadline_minutes(self) -> int:
        """The deadline in minutes after the partition closes."""
        return _minutes(self.deadline)

    @property
    def warn_minutes(self) -> int | None:
        """The warning point in minutes after the partition closes, if any."""
        return None if self.warn_after is None else _minutes(self.warn_after)
