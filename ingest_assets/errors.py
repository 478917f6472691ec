"""The project's exception hierarchy.

Every error a user can meet names the dataset, the place (file, object key, row, YAML key) and the
fix. The Dagster layer turns these into ``dg.Failure`` with the same text; ``transient`` decides
whether the step may be retried.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from ingest_assets.report import LoadReport


class IngestError(Exception):
    """Base class of every error raised by the ingestion core.

    Args:
        message: What went wrong, naming the dataset and the place.
        fix: What the user should do about it.
    """

    #: Whether running the same load again may succeed (network faults, lock contention). It is
    #: a property of the class: a transient fault raises a transient subclass.
    transient: ClassVar[bool] = False

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.message}\nFix: {self.fix}" if self.fix else self.message


class SpecError(IngestError):
    """A dataset declaration is invalid; raised while definitions load."""


class ConfigError(IngestError):
    """The code location's environment lacks a setting a dataset needs (e.g. a variable)."""


class SourceError(IngestError):
    """The source could not be listed or read (missing objects, unreachable endpoint)."""


class SourceUnavailable(SourceError):
    """The source did not answer, or answered with a fault that may pass; the load is retried.

    A timeout, a dropped connection, HTTP 429 or 5xx, S3 throttling.
    """

    transient = True


class ReadInterrupted(SourceUnavailable):
    """The source's stream of rows broke off mid-read (a dropped connection).

    Rows of the window may already have been read, so the source cannot resume where it
    stopped; the engine reads the window again from its start.
    """

    transient = True


class ParseError(SourceError):
    """An object was found but its content could not be parsed in the declared format."""


class ValidationFailed(IngestError):
    """Rows of the window broke the declared schema; nothing was written.

    Args:
        message: What failed, naming the dataset and window.
        fix: What the user should do about it.
        report: The load's report, whose ``validation`` holds the failures.
    """

    def __init__(self, message: str, *, fix: str, report: LoadReport) -> None:
        super().__init__(message, fix=fix)
        self.report = report


class DestinationError(IngestError):
    """The warehouse rejected the write; the previous rows of the window are intact."""


class DestinationBusy(DestinationError):
    """The warehouse stayed held by another writer past the wait; the load is retried.

    The previous rows are intact.
    """

    transient = True


class PartitionsFailed(IngestError):
    """Some windows of a range failed; the others were written (a range that is not atomic).

    Args:
        message: Which partitions failed and why, naming the dataset.
        fix: What the user should do about it.
        reports: Every window's report, in order; a failed one has its ``error`` set and wrote
            nothing, the others were written.
    """

    def __init__(self, message: str, *, fix: str, reports: list[LoadReport]) -> None:
        super().__init__(message, fix=fix)
        self.reports = reports


class PartitionsBusy(PartitionsFailed):
    """Some windows of a range failed, each on a transient fault; the load is retried."""

    transient = True
