"""A dataset's door: a pushed request's body judged record by record, then journaled.

The body (one JSON object, an array of them, or NDJSON) is parsed whole before anything is
kept: malformed JSON, a record that is not an object, or an empty body is a :class:`Refused`
request and nothing is written. The records are then validated as a batch by the dataset's
own validator (the rules and severities of a load): a record that breaks any rule is rejected
and becomes a dead letter with its reasons; the others are journaled in the period of their
event time. The answer names every rejected record's index, field and rule.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pyarrow as pa

from ingest_assets.engine import validator_for
from ingest_assets.errors import ConfigError
from ingest_assets.push.journal import Accepted, Answer, Entry, Journal
from ingest_assets.push.spec import IngestApiSpec
from ingest_assets.push.target import PushTarget, TakesPushes
from ingest_assets.quality.schema import ARROW_TYPES, Failure, ValidationSummary
from ingest_assets.sources.base import Origins
from ingest_assets.sources.object_store.formats import json_kind
from ingest_assets.sources.records import records_batch
from ingest_assets.sources.registry import SOURCE_KINDS
from ingest_assets.spec import DatasetSpec

#: Content types of a JSON body (one record or an array) and of NDJSON (a record per line).
JSON_TYPES = ("application/json",)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")
#: Rejected records listed in an answer at most (the counts are always complete).
MAX_LISTED = 1_000


class Refused(Exception):
    """A request refused whole (nothing written): an HTTP status and what to fix."""

    def __init__(self, status: int, message: str, fix: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.fix = fix
        self.headers = headers or {}

    def body(self) -> bytes:
        """The JSON body of the answer."""
        return orjson.dumps({"error": self.message, "fix": self.fix})


@dataclass(frozen=True)
class Pushed:
    """One request's body, its content type and its Idempotency-Key."""

    body: bytes
    content_type: str
    key: str | None


@dataclass
class _Rejected:
    index: int
    errors: list[dict[str, Any]] = field(default_factory=list)


class Door:
    """Where one dataset's records are pushed.

    Args:
        spec: The dataset (with ``ingest_api`` set).
        salt: The hash-masking salt, when a column needs it.

    Raises:
        ConfigError: the dataset takes no pushes, or its token variable is not set.
    """

    def __init__(self, spec: DatasetSpec, salt: str | None = None) -> None:
        api = spec.ingest_api
        kind = SOURCE_KINDS.of(spec.source)
        if api is None or not isinstance(kind, TakesPushes):
            raise ConfigError(
                f"Dataset '{spec.name}' takes no pushed records.",
                fix="Set ingest_api: true in its declaration (an object_store source).",
            )
        self.spec = spec
        self.api: IngestApiSpec = api
        self.target: PushTarget = kind.push_target(spec, spec.source)
        self.validator = validator_for(spec, salt)
        self.types = {
            name: ARROW_TYPES[column.dtype]
            for name, column in (spec.table_schema.columns or {}).items()
        }
        variable = api.token_variable(spec.name)
        token = os.environ.get(variable, "")
        if not token:
            raise ConfigError(
                f"Dataset '{spec.name}': its ingest API token variable {variable} is not set.",
                fix=f"Set {variable} to a long random secret that clients send as "
                "'Authorization: Bearer <token>' (or set ingest_api.token_env).",
            )
        self._token = token.encode()
        self.first = datetime.fromisoformat(spec.partitioning.start)
        if self.first.tzinfo is None:
            self.first = self.first.replace(tzinfo=ZoneInfo(spec.partitioning.timezone))

    @property
    def name(self) -> str:
        """The dataset's name."""
        return self.spec.name

    def authorized(self, authorization: str | None, api_key: str | None) -> bool:
        """Whether the request carries the dataset's token (compared in constant time)."""
        sent = api_key
        if authorization and authorization[:7].lower() == "bearer ":
            sent = authorization[7:].strip()
        return sent is not None and hmac.compare_digest(sent.encode(), self._token)

    def take(self, requests: list[Pushed], journal: Journal) -> list[Answer | Refused]:
        """Judge requests' records as one batch; journal them and their answers together.

        A request whose body is not JSON records is refused, and nothing of it is written.
        Concurrent requests judged together pay validation's fixed costs once.
        """
        outcomes: list[Answer | Refused | None] = [None] * len(requests)
        parsed: list[tuple[int, list[dict[str, Any]]]] = []
        lines: list[bytes] = []
        for number, request in enumerate(requests):
            try:
                part, part_lines = parse_records(request.body, request.content_type)
            except Refused as refused:
                outcomes[number] = refused
                continue
            parsed.append((number, part))
            lines += part_lines
        received = datetime.now(UTC)
        records = [record for _, part in parsed for record in part]
        accepted, rejected = self.judge(records, lines, received) if records else ([], [])
        entries, offset = [], 0
        for number, part in parsed:
            end = offset + len(part)
            mine = [a for a in accepted if offset <= a.index < end]
            refused = [r for r in rejected if offset <= r.index < end]
            entries.append(self._entry(part, offset, mine, refused, received, requests[number].key))
            offset = end
        for (number, _), answer in zip(parsed, journal.accept(self.name, entries), strict=True):
            outcomes[number] = answer
        return [outcome for outcome in outcomes if outcome is not None]

    def _entry(
        self,
        records: list[dict[str, Any]],
        offset: int,
        accepted: list[Accepted],
        rejected: list[_Rejected],
        received: datetime,
        key: str | None,
    ) -> Entry:
        """One request's part of a judged batch: its records, dead letters and answer."""
        day, stamp = received.date().isoformat(), received.isoformat()
        dead = [
            (day, orjson.dumps({"record": records[r.index - offset], "errors": r.errors,
                                "received_at": stamp}))
            for r in rejected
        ]  # fmt: skip

        def answer(duplicates: int) -> Answer:
            listed = [
                {"index": r.index - offset, "errors": r.errors} for r in rejected[:MAX_LISTED]
            ]
            body = {
                "dataset": self.name,
                "received": len(records),
                "accepted": len(accepted) - duplicates,
                "duplicates": duplicates,
                "rejected": len(rejected),
                "errors": listed,
            }
            status = 202 if not rejected else 207 if accepted else 422
            return Answer(status, orjson.dumps(body))

        return Entry(accepted, dead, key, answer)

    def judge(
        self, records: list[dict[str, Any]], lines: list[bytes], received: datetime
    ) -> tuple[list[Accepted], list[_Rejected]]:
        """Validate the records; the valid ones with their periods, the others with reasons.

        ``lines`` are the records as NDJSON lines (what the journal keeps of a valid one).
        """
        batch = records_batch(records, self.types)
        summary = ValidationSummary(every=[])
        origin = f"POST /ingest/{self.name}"
        validated = self.validator.validate(
            batch, origins=Origins.single(origin, len(records), first_row=0), summary=summary
        )
        rejected: dict[int, _Rejected] = {}
        for index, failure in summary.every or []:
            for row in range(len(records)) if index < 0 else [index]:
                rejected.setdefault(row, _Rejected(row)).errors.append(_described(failure))
        good = validated.good
        if good is None:
            kept: list[int] = []
        else:
            kept = (
                list(range(len(records))) if validated.kept is None else validated.kept.to_pylist()
            )
        times = self._times(good, received)
        keys = self._keys(good)
        accepted = []
        for position, (index, moment) in enumerate(zip(kept, times, strict=True)):
            problem = self._misplaced(moment)
            if problem is not None:
                rejected.setdefault(index, _Rejected(index)).errors.append(problem)
                continue
            assert moment is not None
            period = self.target.period_of(moment).isoformat()
            accepted.append(Accepted(index, lines[index], period, keys[position]))
        return accepted, sorted(rejected.values(), key=lambda r: r.index)

    def _times(self, good: pa.RecordBatch | None, received: datetime) -> list[datetime | None]:
        """Each good record's event time (its time field's value, or when it was received)."""
        if good is None:
            return []
        name = self.api.time_field
        if name is None:
            return [received] * good.num_rows
        zone = ZoneInfo(self.spec.partitioning.timezone)
        return [_moment(value, zone) for value in good.column(name).to_pylist()]

    def _keys(self, good: pa.RecordBatch | None) -> list[str | None]:
        """Each good record's idempotency key, as text (None: no key)."""
        if good is None:
            return []
        name = self.api.idempotency_field
        if name is None:
            return [None] * good.num_rows
        return [None if v is None else str(v) for v in good.column(name).to_pylist()]

    def _misplaced(self, moment: datetime | None) -> dict[str, Any] | None:
        """Why a valid record has no partition (no event time, or before the first), or None."""
        name = self.api.time_field or "received"
        if moment is None:
            message = f"{name} is empty: a record needs it to find its partition"
        elif moment < self.first:
            message = f"before the dataset's first partition ({self.spec.partitioning.start})"
        else:
            return None
        value = None if moment is None else moment.isoformat()
        return {"field": name, "rule": "event time", "value": value, "severity": "error",
                "message": message}  # fmt: skip


def _moment(value: Any, zone: ZoneInfo) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=zone)
    return None


def _described(failure: Failure) -> dict[str, Any]:
    value = failure.value
    if value is not None and not isinstance(value, str | int | float | bool):
        value = str(value)
    return {
        "field": failure.column,
        "rule": failure.check,
        "value": value,
        "severity": failure.severity,
    }


def media_type(content_type: str) -> str:
    """The media type of a Content-Type header, if it is JSON or NDJSON.

    Raises:
        Refused: any other content type (415).
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in JSON_TYPES + NDJSON_TYPES:
        raise Refused(
            415,
            f"Content type {media or '(none)'!r} is not accepted.",
            fix="Send Content-Type: application/json (an object or an array) or "
            "application/x-ndjson (one object per line).",
        )
    return media


def parse_records(body: bytes, content_type: str) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The records of a request body (a JSON object or array, or NDJSON), and their lines.

    Each record comes with the NDJSON line the journal keeps of it.

    Raises:
        Refused: a content type other than JSON or NDJSON (415), malformed JSON, a record that
            is not an object, one nested too deep to keep, or no records (400).
    """
    if media_type(content_type) in JSON_TYPES:
        records = _parsed(body, "the body")
        if isinstance(records, dict):
            records = [records]
        elif not isinstance(records, list):
            raise Refused(
                400,
                f"The body is a JSON {json_kind(records)}; send a record (an object) or an array.",
                fix="Send one JSON object, or an array of them.",
            )
    else:
        records = list(_lines(body))
    if not records:
        raise Refused(400, "The body holds no records.", fix="Send at least one record.")
    lines = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise Refused(
                400,
                f"Record {index} is a JSON {json_kind(record)}, not an object; nothing was "
                "written.",
                fix="Send every record as a JSON object of field names and values.",
            )
        try:
            lines.append(orjson.dumps(record))  # fails past 254 levels of nesting
        except TypeError:
            raise Refused(
                400,
                f"Record {index} nests objects or arrays deeper than 254 levels; nothing was "
                "written.",
                fix="Flatten the record, or send deep structures as JSON text in a field.",
            ) from None
    return records, lines


def _lines(body: bytes) -> Iterator[Any]:
    for number, line in enumerate(body.splitlines(), start=1):
        if line.strip():
            yield _parsed(line, f"line {number}")


def _parsed(text: bytes, where: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise Refused(
            400,
            f"Malformed JSON in {where} (line {exc.lineno}, column {exc.colno}): {exc.msg}; "
            "nothing was written.",
            fix="Send valid JSON (NDJSON: one complete object per line).",
        ) from None
