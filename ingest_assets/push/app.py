"""The ingest API: ``POST /ingest/<dataset>`` for every dataset with ``ingest_api`` set.

A FastAPI application served by uvicorn (``ingest-assets serve``). A request is answered only
after its records are in the journal, so an acknowledged record survives the server being
killed; a request that gets no answer was not acknowledged, and is safe to send again with the
same ``Idempotency-Key``. Answers:

* 202: every record accepted; 207: some rejected (each named by index, field and rule); 422:
  all rejected. Rejected records go to the dataset's dead letters.
* 400 malformed JSON or not records, 401/403 a missing or wrong token, 404 an unknown dataset,
  413 a body over the limit, 415 a content type other than JSON or NDJSON, 429 (with
  ``Retry-After``) when the journal holds too many unwritten records or too many requests are
  in flight. Nothing is written for any of these.

The OpenAPI document (``/openapi.json``, browsable at ``/docs``) describes each dataset's record
from its declared columns.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from ingest_assets.errors import ConfigError
from ingest_assets.onboarding import available_resources
from ingest_assets.paths import data_dir
from ingest_assets.push.door import Door, Pushed, Refused, media_type
from ingest_assets.push.flusher import Flusher
from ingest_assets.push.intake import Intake
from ingest_assets.push.journal import Journal
from ingest_assets.sources.registry import SOURCE_KINDS
from ingest_assets.spec import DatasetSpec

log = logging.getLogger(__name__)

#: Requests being read or judged at once, at most (429 beyond: memory stays bounded).
MAX_IN_FLIGHT = 16
#: Longest Idempotency-Key accepted.
MAX_KEY_LENGTH = 200

_JSON_SCHEMA_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "int32": {"type": "integer", "format": "int32"},
    "int64": {"type": "integer", "format": "int64"},
    "float32": {"type": "number", "format": "float"},
    "float64": {"type": "number", "format": "double"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "timestamp": {"type": "string", "format": "date-time"},
}


def create_app(
    doors: dict[str, Door],
    journal: Journal,
    flusher: Flusher,
    *,
    max_in_flight: int = MAX_IN_FLIGHT,
) -> FastAPI:
    """The ingest API over the given datasets' doors.

    Args:
        doors: The datasets that take pushes, by name.
        journal: Where accepted records are kept until written.
        flusher: Writes them as files (started and stopped with the application).
        max_in_flight: Requests handled at once; more get 429.
    """
    intake = Intake(journal)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(flusher.start)
        intake.start()
        try:
            yield
        finally:
            await run_in_threadpool(intake.stop)
            await run_in_threadpool(flusher.stop)

    app = FastAPI(
        title="ingest_assets ingest API",
        description="Push records to the datasets that declare ingest_api. Records are validated "
        "against the dataset's schema, kept durably before the answer, and loaded into their "
        "partitions by the dataset's landing sensor.",
        lifespan=lifespan,
    )
    _with_security_schemes(app)
    gate = _Gate(max_in_flight)
    for door in doors.values():
        app.add_api_route(
            f"/ingest/{door.name}",
            _endpoint(door, journal, intake, gate),
            methods=["POST"],
            summary=f"Push records to {door.name}",
            description=door.spec.description or f"Records of the dataset {door.name}.",
            openapi_extra=_operation(door),
            status_code=202,
            response_class=Response,
        )

    @app.post("/ingest/{dataset}", include_in_schema=False)
    async def unknown(dataset: str) -> Response:
        known = ", ".join(sorted(doors)) or "none"
        return _refused(
            Refused(
                404,
                f"No dataset {dataset!r} takes pushed records.",
                fix=f"Push to one of: {known} (a dataset takes them with ingest_api: true).",
            )
        )

    @app.get("/health", summary="Whether the API answers, and the records not yet written")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "pending": {name: journal.pending(name) for name in doors}}

    return app


class _Gate:
    """Counts requests in flight (the event loop is one thread: no lock needed)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.inside = 0


def _endpoint(
    door: Door, journal: Journal, intake: Intake, gate: _Gate
) -> Callable[[Request], Awaitable[Response]]:
    api = door.api

    async def ingest(request: Request) -> Response:
        headers = request.headers
        try:
            key = _admit(door, journal, gate, headers)
        except Refused as refused:
            return _refused(refused)
        if key is not None and (replayed := journal.replay(door.name, key)) is not None:
            return _answer(replayed.status, replayed.body, replayed=True)
        gate.inside += 1
        try:
            body = await _body(request, api.max_body_bytes)
            pushed = Pushed(body, headers.get("content-type", ""), key)
            answer = await asyncio.wrap_future(intake.submit(door, pushed))
        except Refused as refused:
            return _refused(refused)
        except Exception:
            log.exception("%s: a pushed request failed", door.name)
            return _refused(
                Refused(
                    500,
                    "The records were not accepted (an internal error; the server's log has "
                    "the details). Nothing was written.",
                    fix="Send the request again, with the same Idempotency-Key.",
                )
            )
        finally:
            gate.inside -= 1
        return _answer(answer.status, answer.body, replayed=answer.replayed)

    return ingest


def _admit(door: Door, journal: Journal, gate: _Gate, headers: Any) -> str | None:
    """Check a request before its body is read; its Idempotency-Key, if any.

    Raises:
        Refused: no or a wrong token, a content type, size or key refused, or no room.
    """
    api = door.api
    if not (headers.get("authorization") or headers.get("x-api-key")):
        raise Refused(
            401,
            f"Pushing to {door.name} needs its token.",
            fix="Send 'Authorization: Bearer <token>' (or 'X-API-Key: <token>').",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not door.authorized(headers.get("authorization"), headers.get("x-api-key")):
        raise Refused(403, f"The token is not {door.name}'s.", fix="Send the dataset's token.")
    media_type(headers.get("content-type", ""))
    length = headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > api.max_body_bytes:
        raise _too_large(api.max_body_bytes)
    key = headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_KEY_LENGTH:
        raise Refused(
            400,
            f"The Idempotency-Key is empty or longer than {MAX_KEY_LENGTH} characters.",
            fix="Send a unique key per request, such as a UUID.",
        )
    if journal.pending(door.name) >= api.max_pending_rows or gate.inside >= gate.limit:
        retry = max(1, round(api.flush_seconds))
        raise Refused(
            429,
            f"{door.name} has too many records waiting to be written; nothing was accepted.",
            fix=f"Send the request again after {retry} s.",
            headers={"Retry-After": str(retry)},
        )
    return key


def _too_large(limit: int) -> Refused:
    return Refused(
        413,
        f"The body is larger than {limit:,} bytes; nothing was written.",
        fix="Send the records in smaller requests (or raise ingest_api.max_body_bytes).",
    )


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused past ``limit`` bytes while it streams in."""
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise _too_large(limit)
        parts.append(part)
    return b"".join(parts)


def _answer(status: int, body: bytes, *, replayed: bool) -> Response:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _refused(refused: Refused) -> Response:
    return Response(
        refused.body(),
        status_code=refused.status,
        media_type="application/json",
        headers=refused.headers,
    )


def _operation(door: Door) -> dict[str, Any]:
    """The OpenAPI operation's request body and answers, from the declared columns."""
    record = record_schema(door)
    answer = {"content": {"application/json": {"schema": {"type": "object"}}}}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"oneOf": [record, {"type": "array", "items": record}]}
                },
                "application/x-ndjson": {
                    "schema": {"type": "string", "description": "One JSON record per line."}
                },
            },
        },
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": MAX_KEY_LENGTH},
                "description": "A request sent again with the same key is answered as the "
                "first time and written once.",
            }
        ],
        "security": [{"bearer": []}, {"apiKey": []}],
        "responses": {
            "202": {"description": "Every record accepted.", **answer},
            "207": {"description": "Some records rejected (listed with reasons).", **answer},
            "422": {"description": "Every record rejected (listed with reasons).", **answer},
            "429": {"description": "Too many records waiting; retry after Retry-After."},
        },
    }


def record_schema(door: Door) -> dict[str, Any]:
    """A JSON Schema of one record: the declared columns (text that converts is accepted)."""
    columns = door.spec.table_schema.columns or {}
    properties: dict[str, Any] = {}
    for name, column in columns.items():
        schema = dict(_JSON_SCHEMA_TYPES[column.dtype])
        if column.nullable:
            schema["type"] = [schema["type"], "null"]
        if column.description:
            schema["description"] = column.description
        properties[name] = schema
    return {
        "type": "object",
        "title": door.name,
        "properties": properties,
        "required": [name for name, column in columns.items() if not column.nullable],
    }


def _with_security_schemes(app: FastAPI) -> None:
    """Name the two ways a token is sent in the OpenAPI document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()
        document.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def serve(
    specs: list[DatasetSpec],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    journal_path: Path | None = None,
) -> None:
    """Serve the ingest API for the datasets with ``ingest_api`` set, until interrupted.

    Raises:
        ConfigError: no dataset takes pushes, or one's token (or masking salt) is not set.
    """
    import uvicorn

    doors = {spec.name: Door(spec, salt=_salt(spec)) for spec in specs if spec.ingest_api}
    if not doors:
        raise ConfigError(
            "No declared dataset takes pushed records.",
            fix="Add ingest_api: true to a dataset with an object_store source.",
        )
    wanted = {
        key
        for spec in specs
        if spec.ingest_api
        for key in SOURCE_KINDS.of(spec.source).resource_keys(spec.source)
    }
    available = available_resources(wanted)
    journal = Journal(journal_path or data_dir() / "ingest_api" / "journal.sqlite")
    # As a run would: EnvVar settings resolved by Dagster (an S3 resource's credentials).
    with dg.build_resources({key: available[key] for key in wanted}) as built:
        flusher = Flusher(journal, doors, built)
        app = create_app(doors, journal, flusher)
        log.info("ingest API for %s on http://%s:%d", ", ".join(doors), host, port)
        try:
            uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
        finally:
            journal.close()


def _salt(spec: DatasetSpec) -> str | None:
    return os.environ.get(spec.quality.salt_env) or None
