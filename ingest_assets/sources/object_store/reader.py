"""Object-store sources: files in S3 (or any S3-compatible store) or in a local folder.

Both stores sit behind one small interface (:class:`ObjectStore`): list the objects under a key
prefix, and open one for streaming. A dataset's key template maps a partition window to exactly
the objects it owns; :func:`objects_for_window` does that mapping, :class:`ObjectStoreReader`
streams their rows as Arrow record batches.
"""

from __future__ import annotations

import os
import re
import string
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol
from zoneinfo import ZoneInfo

import pyarrow as pa
from botocore import exceptions as boto_errors
from wcmatch import glob

from ingest_assets.errors import IngestError, SourceError, SourceUnavailable
from ingest_assets.sources.base import Chunk, ReadPlan
from ingest_assets.sources.object_store.formats import read_object
from ingest_assets.sources.object_store.spec import (
    READABLE_STRFTIME,
    ObjectStoreSource,
    key_template_granularity,
)
from ingest_assets.windows import Window

_GLOB_FLAGS = glob.GLOBSTAR | glob.BRACE


@dataclass(frozen=True)
class ObjectInfo:
    """One object in a store.

    Attributes:
        key: Key relative to the source location, '/'-separated.
        size: Size in bytes.
        etag: A version tag that changes when the content changes.
        modified: When the object was last written, in seconds since the epoch (for local
            files the later of the content and inode change times, so a copy that keeps an
            old modification time still counts as new).
    """

    key: str
    size: int
    etag: str
    modified: float = 0.0


@dataclass(frozen=True)
class WindowObject:
    """An object selected for a window, with the period of the key template it matched."""

    info: ObjectInfo
    period_start: datetime


class ObjectStore(Protocol):
    """What the ingestion core needs from a store of files."""

    def list(self, prefix: str, *, start_after: str = "") -> Iterator[ObjectInfo]:
        """Yield every object whose key starts with ``prefix``, in key order.

        Args:
            prefix: Key prefix to list.
            start_after: Only keys that sort after this one (to resume a listing).
        """
        ...

    def open(self, key: str, *, seekable: bool) -> Any:
        """Return a context manager giving a binary file for ``key``."""
        ...

    def uri(self, key: str) -> str:
        """A human-readable address of ``key`` for messages and metadata."""
        ...


class WritableStore(ObjectStore, Protocol):
    """A store files can be written to (where pushed records land)."""

    def put(self, key: str, data: bytes) -> None:
        """Write ``data`` as ``key`` whole: readers see all of it or none."""
        ...


class LocalStore:
    """Files under a folder on the local disk.

    Args:
        root: The folder that keys are relative to.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def list(self, prefix: str, *, start_after: str = "") -> Iterator[ObjectInfo]:
        """Yield the files whose relative path starts with ``prefix``, in key order."""
        directory = self.root / prefix.rpartition("/")[0]
        if not directory.is_dir():
            return
        found = []
        for path in directory.rglob("*"):
            if not path.is_file():
                continue
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix) and key > start_after:
                stat = path.stat()
                found.append(
                    ObjectInfo(
                        key,
                        stat.st_size,
                        f"{stat.st_mtime_ns:x}-{stat.st_size:x}",
                        max(stat.st_mtime, stat.st_ctime),
                    )
                )
        yield from sorted(found, key=lambda info: info.key)

    @contextmanager
    def open(self, key: str, *, seekable: bool) -> Iterator[IO[bytes]]:
        """Open a file for reading (local files are always seekable)."""
        with (self.root / key).open("rb") as handle:
            yield handle

    def uri(self, key: str) -> str:
        """The file's absolute path."""
        return str(self.root / key)

    def put(self, key: str, data: bytes) -> None:
        """Write a file whole and durably: a reader sees the old one or the new one, never part.

        The bytes go to a hidden folder under the root first (never matched by a key template
        that starts with a literal or a placeholder), are synced, and renamed into place.
        """
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        spool = self.root / ".ingest-tmp"
        spool.mkdir(exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=spool, delete=False) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(handle.name).replace(target)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


class S3Store:
    """Objects in an S3 bucket below a prefix, through a boto3 client.

    Args:
        client: A boto3 S3 client (from dagster-aws's ``S3Resource.get_client()``).
        bucket: The bucket name.
        prefix: Key prefix the dataset's keys are relative to ('' for the bucket root).
    """

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def list(self, prefix: str, *, start_after: str = "") -> Iterator[ObjectInfo]:
        """Yield the objects whose key starts with ``prefix``, in key order (S3 lists in order).

        Pages of up to 1,000 keys are fetched lazily, so a caller that stops early stops listing.
        """
        paginator = self.client.get_paginator("list_objects_v2")
        extra = {"StartAfter": self.prefix + start_after} if start_after else {}
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix, **extra):
            for item in page.get("Contents", []):
                yield ObjectInfo(
                    key=item["Key"][len(self.prefix) :],
                    size=item["Size"],
                    etag=item.get("ETag", "").strip('"'),
                    modified=item["LastModified"].timestamp(),
                )

    @contextmanager
    def open(self, key: str, *, seekable: bool) -> Iterator[IO[bytes]]:
        """Stream an object; download it to a spooled temporary file when seeking is needed."""
        if seekable:
            with tempfile.SpooledTemporaryFile(max_size=64 * 2**20) as spool:
                self.client.download_fileobj(self.bucket, self.prefix + key, spool)
                spool.seek(0)
                yield spool  # type: ignore[misc]
        else:
            body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"]
            try:
                yield body  # type: ignore[misc]
            finally:
                body.close()

    def uri(self, key: str) -> str:
        """The object's s3:// URL."""
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def put(self, key: str, data: bytes) -> None:
        """Write an object whole (S3 shows a PUT at once or not at all)."""
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)


_TRANSIENT_S3_CODES = {
    "InternalError",
    "RequestTimeout",
    "ServiceUnavailable",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
}
_S3_FIXES = {
    "NoSuchBucket": "Check the bucket name in source.location.",
    "AccessDenied": "Grant the credentials s3:ListBucket and s3:GetObject on the location.",
    "InvalidAccessKeyId": "Check AWS_ACCESS_KEY_ID (or the profile) the S3 resource uses.",
    "SignatureDoesNotMatch": "Check AWS_SECRET_ACCESS_KEY (or the profile) the S3 resource uses.",
    "ExpiredToken": "Refresh the session credentials (AWS_SESSION_TOKEN).",
}


@contextmanager
def store_errors(dataset: str, location: str) -> Iterator[None]:
    """Turn S3 and file-system failures into :class:`SourceError` naming dataset and location.

    Network faults, throttling and 5xx answers are marked transient (worth retrying); missing
    buckets and refused credentials are not. Messages carry the service's error code and text,
    which never include credentials.
    """
    try:
        yield
    except IngestError:
        raise
    except boto_errors.NoCredentialsError:
        raise SourceError(
            f"Dataset '{dataset}': no S3 credentials were found to read {location}.",
            fix="Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) for the code "
            "location.",
        ) from None
    except boto_errors.ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        transient = status >= 500 or code in _TRANSIENT_S3_CODES
        raise (SourceUnavailable if transient else SourceError)(
            f"Dataset '{dataset}': S3 refused a request for {location}: {code or status} "
            f"({error.get('Message', exc)}).",
            fix=_S3_FIXES.get(code, "Check source.location and the S3 resource's settings."),
        ) from None
    except (boto_errors.BotoCoreError, ConnectionError, TimeoutError) as exc:
        raise SourceUnavailable(
            f"Dataset '{dataset}': the object store for {location} did not answer: {exc}",
            fix="Check that the endpoint (INGEST_S3_ENDPOINT_URL) is reachable; the load is safe "
            "to retry.",
        ) from None
    except OSError as exc:
        raise SourceError(
            f"Dataset '{dataset}': cannot read {exc.filename or location}: {exc.strerror or exc}",
            fix="Check that the folder exists and is readable by the code location's user.",
        ) from None


def split_s3_location(location: str) -> tuple[str, str]:
    """Split 's3://bucket/prefix' into its bucket and prefix."""
    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    return bucket, prefix


class _KeyFormatter(string.Formatter):
    """Renders key templates; only the time placeholders validated by the spec exist."""

    def render(self, template: str, moment: datetime) -> str:
        return self.format(
            template,
            start=moment,
            year=f"{moment.year:04d}",
            month=f"{moment.month:02d}",
            day=f"{moment.day:02d}",
            hour=f"{moment.hour:02d}",
            date=moment.strftime("%Y-%m-%d"),
        )


_FORMATTER = _KeyFormatter()


def render_key_pattern(template: str, moment: datetime) -> str:
    """Render a key template for the period starting at ``moment`` into a glob pattern."""
    return _FORMATTER.render(template, moment)


def literal_prefix(pattern: str) -> str:
    """The part of a glob pattern (or key template) before its first wildcard or placeholder."""
    cut = min((i for i, ch in enumerate(pattern) if ch in "*?[{"), default=len(pattern))
    return pattern[:cut]


#: What each time field of a key captures.
_FIELD_REGEX = {
    "year": r"\d{4}",
    "month": r"\d{2}",
    "day": r"\d{2}",
    "hour": r"\d{2}",
    "date": r"\d{4}-\d{2}-\d{2}",
    "yday": r"\d{3}",
    "minute": r"\d{2}",
}


class KeyPeriods:
    """Maps an object key back to the period of its key template (the inverse of rendering).

    The template's placeholders become capture groups of the regular expression that wcmatch
    translates the template's glob into; a key's captured fields give a period start, which is
    accepted only if the template rendered for that period matches the key again.

    Args:
        template: The key template, e.g. ``'dt={date}/*.csv'``.
        timezone: The time zone the template's fields are in (the partitioning's).

    Raises:
        ValueError: the template uses a ``{start:...}`` directive that cannot be read back
            (the spec rejects such templates for landing triggers).
    """

    def __init__(self, template: str, timezone: str) -> None:
        self.template = template
        self.tz = ZoneInfo(timezone)
        glob_text: list[str] = []
        self._fields: dict[str, str] = {}  # sentinel -> field name
        for literal, field, spec, _ in string.Formatter().parse(template):
            glob_text.append(literal)
            if field is None:
                continue
            if field != "start":
                glob_text.append(self._sentinel(field))
                continue
            directives = iter((spec or "").split("%"))
            glob_text.append(next(directives))
            for part in directives:
                if not part or part[0] not in READABLE_STRFTIME:
                    raise ValueError(f"{{start:{spec}}} cannot be read back from a key")
                glob_text += [self._sentinel(READABLE_STRFTIME[part[0]]), part[1:]]
        included, _ = glob.translate("".join(glob_text), flags=_GLOB_FLAGS)
        self._regexes = []
        for regex in included:
            for sentinel, field in self._fields.items():
                regex = regex.replace(sentinel, f"(?P<{sentinel}>{_FIELD_REGEX[field]})", 1)
            self._regexes.append(re.compile(regex))

    def _sentinel(self, field: str) -> str:
        sentinel = f"IngestField{len(self._fields)}X"
        self._fields[sentinel] = field
        return sentinel

    def period_of(self, key: str) -> datetime | None:
        """The start of the template period ``key`` belongs to, or None if it does not match."""
        for regex in self._regexes:
            match = regex.match(key)
            if match:
                break
        else:
            return None
        values: dict[str, int] = {}
        for sentinel, field in self._fields.items():
            text = match.group(sentinel)
            if field == "date":
                year, month, day = text.split("-")
                values.update(year=int(year), month=int(month), day=int(day))
            else:
                values[field] = int(text)
        try:
            moment = datetime(
                values.get("year", 1970),
                values.get("month", 1),
                values.get("day", 1),
                values.get("hour", 0),
                values.get("minute", 0),
                tzinfo=self.tz,
            )
            if "yday" in values:
                moment = moment.replace(month=1, day=1) + timedelta(days=values["yday"] - 1)
        except ValueError:  # e.g. month 13: not a period of the template
            return None
        pattern = render_key_pattern(self.template, moment)
        return moment if glob.globmatch(key, pattern, flags=_GLOB_FLAGS) else None


def objects_for_window(
    store: ObjectStore, source: ObjectStoreSource, window: Window
) -> list[WindowObject]:
    """List exactly the objects whose keys the template maps into ``window``, in key order.

    Each period of the template's granularity inside the window renders to one glob pattern; the
    store is listed under the pattern's literal prefix and keys are matched against it.
    """
    granularity = key_template_granularity(source.key_template)
    selected: dict[str, WindowObject] = {}
    listings: dict[str, list[ObjectInfo]] = {}
    for period in window.periods(granularity):
        pattern = render_key_pattern(source.key_template, period)
        prefix = literal_prefix(pattern)
        if prefix not in listings:
            listings[prefix] = list(store.list(prefix))
        for info in listings[prefix]:
            if info.key not in selected and glob.globmatch(info.key, pattern, flags=_GLOB_FLAGS):
                selected[info.key] = WindowObject(info, period)
    return sorted(selected.values(), key=lambda obj: obj.info.key)


class ObjectStoreReader:
    """Reads a dataset's windows from an object store.

    Args:
        store: Where the objects are.
        source: The dataset's source declaration.
        dataset: The dataset's name, for messages.
    """

    def __init__(self, store: ObjectStore, source: ObjectStoreSource, *, dataset: str) -> None:
        self.store = store
        self.source = source
        self.dataset = dataset
        self._objects: dict[Window, list[WindowObject]] = {}

    def plan(self, window: Window) -> ReadPlan:
        """List the window's objects; fail (unless ``on_missing: empty``) when there are none."""
        with store_errors(self.dataset, self.source.location):
            objects = objects_for_window(self.store, self.source, window)
        self._objects[window] = objects
        if not objects and self.source.on_missing == "fail":
            pattern = render_key_pattern(self.source.key_template, window.start)
            raise SourceError(
                f"Dataset '{self.dataset}', window {window}: no object matches "
                f"{self.store.uri(pattern)!r} (key_template {self.source.key_template!r}).",
                fix="Check that the files have landed and that source.location and "
                "source.key_template point at them; set source.on_missing: empty to load an "
                "empty window instead.",
            )
        return ReadPlan(
            [self.store.uri(obj.info.key) for obj in objects],
            sum(obj.info.size for obj in objects),
        )

    def read(self, window: Window, arrow_types: dict[str, pa.DataType]) -> Iterator[Chunk]:
        """Stream the rows of the window's objects, each batch with its object and first row."""
        objects = self._objects.get(window)
        if objects is None:
            self.plan(window)
            objects = self._objects[window]
        with store_errors(self.dataset, self.source.location):
            for obj in objects:
                key = obj.info.key
                uri = self.store.uri(key)
                try:
                    fmt = self.source.format_for(key)
                except ValueError as exc:
                    raise SourceError(
                        f"Dataset '{self.dataset}': {exc}",
                        fix="Set source.format in the dataset's YAML.",
                    ) from None
                for first_row, batch in read_object(
                    lambda seekable, key=key: self.store.open(key, seekable=seekable),
                    fmt,
                    compressed=key.lower().endswith(".gz"),
                    arrow_types=arrow_types,
                    csv=self.source.csv,
                    where=f"Dataset '{self.dataset}', object {uri}",
                ):
                    yield Chunk(batch, uri, first_row, obj.period_start)
