"""REST sources against a real local HTTP API: paginators, auth, retries, rate limits, failures."""

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest
from dagster_duckdb import DuckDBResource
from freezegun import freeze_time

from ingest_assets.components.assets import dataset_asset
from ingest_assets.engine import RangeReader
from ingest_assets.errors import SourceError
from ingest_assets.sources.base import Chunk
from ingest_assets.sources.records import batch_by_value, flatten, records_batch
from ingest_assets.sources.rest.paginators import Page, PageRequest, Paginator
from ingest_assets.sources.rest.reader import RestReader, parse_retry_after
from ingest_assets.spec import DatasetSpec, RestSource
from ingest_assets.windows import Window
from ingest_assets_tests.api_server import ApiState, make_records
from ingest_assets_tests.conftest import (
    REST_DAY,
    REST_PER_DAY,
    check_named,
    query,
    step_failure,
)

COLUMNS = {
    "id": {"dtype": "string", "nullable": False, "unique": True},
    "amount": {"dtype": "float64", "checks": {"ge": 0}},
    "status": {"dtype": "string"},
    "created_at": {"dtype": "timestamp", "nullable": False},
    "customer": {"dtype": "string"},
}
DAY = REST_DAY
PER_DAY = REST_PER_DAY


def rest_spec(
    base: str,
    endpoint: str,
    columns: dict[str, Any] | None = None,
    dataset: dict[str, Any] | None = None,
    **source: Any,
) -> DatasetSpec:
    """An orders dataset over the test API; ``dataset`` overrides top-level keys."""
    return DatasetSpec.model_validate(
        {
            "name": "orders",
            "source": {
                "kind": "rest",
                "base_url": base,
                "endpoint": endpoint,
                "params": {"start": "{start}", "end": "{end}"},
                "records_path": "data",
                "retry": {"backoff_seconds": 0.05, "retry_after_floor_seconds": 0.3},
                **source,
            },
            "partitioning": {"cadence": "daily", "start": "2026-10-01"},
            "schema": {"columns": columns or COLUMNS},
            "destination": {"table": "raw.orders"},
            "retry": {"max_retries": 0},
            **(dataset or {}),
        }
    )


def load(spec: DatasetSpec, data_dir: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [dataset_asset(spec, origin="test")],
        partition_key=DAY,
        resources={"duckdb": DuckDBResource(database=str(data_dir / "warehouse.duckdb"))},
        raise_on_error=False,
    )


def loaded_ids(data_dir: Path) -> list[str]:
    return [r[0] for r in query(data_dir, "SELECT id FROM raw.orders ORDER BY id")]


EXPECTED = sorted(r["id"] for r in make_records(DAY, PER_DAY))


#: Every paginator over the test API: endpoint, paginator, records_path.
PAGINATORS: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/all", {"type": "none"}, "data"),
    ("/v1/page", {"type": "page_number", "total_path": "meta.total"}, "data"),
    ("/v1/page", {"type": "page_number"}, "data"),
    ("/v1/offset", {"type": "offset", "limit": 50, "total_path": "total"}, "items"),
    ("/v1/offset", {"type": "offset", "limit": 50}, "items"),
    (
        "/v1/cursor",
        {"type": "cursor", "cursor_path": "next_cursor", "cursor_param": "cursor"},
        "data",
    ),
    ("/v1/next", {"type": "next_url", "next_url_path": "links.next"}, "data"),
    ("/v1/link", {"type": "link_header"}, "data"),
]


class ShortPagePaginator(Paginator):
    """A project's own paginator: numbered pages until one is shorter than ``size``."""

    def __init__(self, *, size: int) -> None:
        super().__init__()
        self.size, self.page = size, 1

    def init_request(self, request: PageRequest) -> None:
        request.params = {**(request.params or {}), "page": self.page}

    def update_state(self, page: Page) -> None:
        self.has_next_page = len(page.records) == self.size
        self.page += 1

    def update_request(self, request: PageRequest) -> None:
        request.params = {**(request.params or {}), "page": self.page}


def test_a_custom_paginator_named_by_reference_walks_the_pages(
    api: tuple[str, ApiState], data_dir: Path
) -> None:
    base, state = api
    ref = f"{__name__}:ShortPagePaginator"
    options = {"size": state.page_size}
    spec = rest_spec(base, "/v1/page", paginator={"type": "custom", "ref": ref, "options": options})
    assert load(spec, data_dir).success
    assert loaded_ids(data_dir) == EXPECTED
    pages = [query for _, query in state.seen if "page=" in query]
    assert len(pages) == math.ceil(REST_PER_DAY / state.page_size)  # stopped at the short page


def test_a_custom_paginator_that_is_not_one_fails_at_load_naming_it() -> None:
    with pytest.raises(ValueError, match=r"'json:dumps' is not a subclass of .*Paginator"):
        rest_spec(
            "http://127.0.0.1:1", "/v1/page", paginator={"type": "custom", "ref": "json:dumps"}
        )


def test_post_sends_the_window_in_a_templated_json_body(
    api: tuple[str, ApiState], data_dir: Path
) -> None:
    base, state = api
    body = {"filter": {"from": "{start}", "to": "{end}"}, "fields": ["id", "amount"]}
    spec = rest_spec(base, "/v1/search", method="POST", body=body, params={},
                     paginator={"type": "page_number"})  # fmt: skip
    assert load(spec, data_dir).success
    assert loaded_ids(data_dir) == EXPECTED
    sent = json.loads(state.seen[0][1])
    assert sent == {"filter": {"from": "2026-10-02T00:00:00Z", "to": "2026-10-03T00:00:00Z"},
                    "fields": ["id", "amount"]}  # fmt: skip


def test_a_body_with_get_or_an_unknown_placeholder_fails_at_load() -> None:
    with pytest.raises(ValueError, match="body is sent with method: POST only"):
        rest_spec("http://127.0.0.1:1", "/v1/search", body={"q": "x"})
    with pytest.raises(ValueError, match=r"body.filter.since: unknown placeholder \{yesterday\}"):
        rest_spec("http://127.0.0.1:1", "/v1/search", method="POST",
                  body={"filter": {"since": "{yesterday}"}})  # fmt: skip


@pytest.mark.parametrize(("endpoint", "paginator", "records_path"), PAGINATORS)
def test_each_paginator_loads_exactly_the_window(
    api: tuple[str, ApiState],
    data_dir: Path,
    endpoint: str,
    paginator: dict[str, Any],
    records_path: str,
) -> None:
    base, _ = api
    spec = rest_spec(base, endpoint, paginator=paginator, records_path=records_path)
    result = load(spec, data_dir)
    assert result.success, step_failure(result)
    assert loaded_ids(data_dir) == EXPECTED
    assert load(spec, data_dir).success
    assert loaded_ids(data_dir) == EXPECTED, "a rerun must give the same rows"


@pytest.mark.parametrize(
    ("mode", "auth"),
    [
        ("bearer", {"type": "bearer", "token_env": "API_TOKEN"}),
        ("api_key_header", {"type": "api_key", "name": "X-API-Key", "key_env": "API_TOKEN"}),
        (
            "api_key_query",
            {"type": "api_key", "name": "api_key", "location": "query", "key_env": "API_TOKEN"},
        ),
        ("basic", {"type": "basic", "username_env": "API_USER", "password_env": "API_TOKEN"}),
    ],
)
def test_auth_schemes_and_no_secret_in_errors_or_logs(
    api: tuple[str, ApiState],
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    auth: dict[str, Any],
) -> None:
    base, state = api
    state.auth = mode
    monkeypatch.setenv("API_USER", "user")
    monkeypatch.setenv("API_TOKEN", state.secret)
    spec = rest_spec(base, "/v1/page", paginator={"type": "page_number"}, auth=auth)
    result = load(spec, data_dir)
    assert result.success, step_failure(result)
    assert loaded_ids(data_dir) == EXPECTED

    monkeypatch.setenv("API_TOKEN", "wrong-secret-value")
    failed = load(spec, data_dir)
    message = step_failure(failed)
    assert "answered HTTP 401" in message and f"{base}/v1/page" in message
    everything = message + "\n".join(str(event) for event in failed.all_events)
    assert "wrong-secret-value" not in everything and state.secret not in everything


def test_oauth2_token_is_refreshed_when_it_expires_mid_window(
    api: tuple[str, ApiState], data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, state = api
    state.auth, state.token_lifetime, state.slow_seconds = "oauth2", 0.25, 0.1
    monkeypatch.setenv("CLIENT_ID", "client-id")
    monkeypatch.setenv("CLIENT_SECRET", "client-secret-value")
    auth = {"type": "oauth2_client_credentials", "token_url": f"{base}/oauth/token",
            "client_id_env": "CLIENT_ID", "client_secret_env": "CLIENT_SECRET"}  # fmt: skip
    spec = rest_spec(base, "/v1/cursor", paginator={"type": "cursor"}, auth=auth)
    result = load(spec, data_dir)
    assert result.success, step_failure(result)
    assert loaded_ids(data_dir) == EXPECTED
    assert state.tokens_issued >= 2


def test_flaky_server_still_yields_a_complete_duplicate_free_partition(
    api: tuple[str, ApiState], data_dir: Path
) -> None:
    base, state = api
    state.fail_rate = 0.3
    spec = rest_spec(
        base,
        "/v1/page",
        paginator={"type": "page_number", "total_path": "meta.total"},
        retry={"attempts": 10, "backoff_seconds": 0.01},
    )
    result = load(spec, data_dir)
    assert result.success, step_failure(result)
    assert query(data_dir, "SELECT count(*), count(DISTINCT id) FROM raw.orders") == [
        (PER_DAY, PER_DAY)
    ]
    assert state.requests > 3, "the server must have failed some requests"


def test_retry_after_is_honoured_with_a_floor_and_in_date_form(
    api: tuple[str, ApiState], data_dir: Path
) -> None:
    base, state = api
    # The server renders the HTTP date when it answers, however long the run took to start.
    state.retry_after = ["0", "1", "in:4"]
    spec = rest_spec(base, "/v1/all")
    result = load(spec, data_dir)
    assert result.success, step_failure(result)
    gaps = [b - a for a, b in zip(state.request_times, state.request_times[1:], strict=False)]
    assert gaps[0] >= 0.3, "Retry-After: 0 must wait the floor, not loop"
    assert gaps[1] >= 1.0
    assert gaps[2] >= 1.0, "an HTTP-date Retry-After waits until that time"
    assert loaded_ids(data_dir) == EXPECTED


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    with freeze_time(datetime(2026, 11, 29, 6, 0, tzinfo=UTC)):  # the clock does not move
        future = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
        assert parse_retry_after(future) == 30.0
        past = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
        assert parse_retry_after(past) == 0.0


def test_permanently_failing_page_fails_with_url_and_status_and_keeps_previous_rows(
    api: tuple[str, ApiState], data_dir: Path
) -> None:
    base, state = api
    spec = rest_spec(base, "/v1/page", paginator={"type": "page_number"},
                     retry={"attempts": 2, "backoff_seconds": 0.01})  # fmt: skip
    assert load(spec, data_dir).success
    state.broken_page = 2
    state.records = [r for r in state.records if not r["id"].startswith(DAY)] + make_records(
        DAY, 120
    )
    message = step_failure(load(spec, data_dir))
    assert "page=2" in message and "HTTP 503" in message and "(after 2 attempt(s))" in message
    assert loaded_ids(data_dir) == EXPECTED, "no partial rows may be loaded"


def test_slow_answers_past_the_timeout_fail_clearly(
    api: tuple[str, ApiState], data_dir: Path
) -> None:
    base, state = api
    state.slow_seconds = 0.6
    spec = rest_spec(
        base, "/v1/all", timeout_seconds=0.2, retry={"attempts": 2, "backoff_seconds": 0.01}
    )
    message = step_failure(load(spec, data_dir))
    assert f"{base}/v1/all" in message and "did not answer: ReadTimeout" in message


def test_malformed_json_page_fails_clearly(api: tuple[str, ApiState], data_dir: Path) -> None:
    base, state = api
    state.malformed_page = 2
    spec = rest_spec(base, "/v1/page", paginator={"type": "page_number"})
    message = step_failure(load(spec, data_dir))
    assert "page=2" in message and "not JSON" in message


def test_schema_drift_fails_validation_with_counts(
    api: tuple[str, ApiState], data_dir: Path
) -> None:
    base, state = api
    state.drift_page = 2
    spec = rest_spec(base, "/v1/page", paginator={"type": "page_number"})
    result = load(spec, data_dir)
    assert not result.success
    check = check_named(result, "schema")
    assert check.metadata["failures_by_rule"].value == {"amount: dtype: float64": 50}


def test_nested_objects_flatten_to_columns(api: tuple[str, ApiState], data_dir: Path) -> None:
    base, _ = api
    columns = {k: v for k, v in COLUMNS.items() if k != "customer"}
    columns["customer_country"] = {"dtype": "string", "checks": {"isin": ["DE", "FR", "US"]}}
    spec = rest_spec(base, "/v1/all", columns, nested="flatten")
    result = load(spec, data_dir)
    assert result.success, step_failure(result)
    assert query(data_dir, "SELECT count(DISTINCT customer_country) FROM raw.orders") == [(3,)]


def test_rate_limit_is_shared_by_concurrent_page_fetches(
    api: tuple[str, ApiState], data_dir: Path
) -> None:
    base, state = api
    state.records = make_records(DAY, 500)  # 10 pages
    spec = rest_spec(
        base,
        "/v1/page",
        paginator={"type": "page_number", "total_path": "meta.total"},
        requests_per_second=20,
        concurrency=4,
    )
    result = load(spec, data_dir)
    assert result.success, step_failure(result)
    assert len(loaded_ids(data_dir)) == 500
    times = state.request_times
    assert len(times) == 10
    assert times[-1] - times[0] >= 9 / 20 * 0.8, "10 requests at 20/s take at least ~0.45 s"


@pytest.mark.parametrize("nested", ["json", "flatten"])
def test_arrow_page_conversion_gives_the_same_columns_as_the_per_value_path(nested: str) -> None:
    """Pages are converted by Arrow in one call (to the declared types when a page has only
    declared fields); the result equals the per-value conversion, for nested objects and lists,
    keys that appear late, nulls, and a field that changes type."""
    declared = {"id": pa.string(), "amount": pa.float64(), "missing": pa.string()}
    pages: list[list[Any]] = [
        [
            {"id": "a", "amount": 1.5, "customer": {"name": "Ann", "tags": ["x"]}},
            {"id": "b", "amount": None, "items": [1, 2], "late": True},
            {"id": "c", "amount": 3, "customer": None},
        ],
        [{"id": "a", "amount": 1}, {"id": 2, "amount": "n/a"}],  # id drifts to a number
        [{"id": "a", "amount": 1, "missing": None}, {"id": "b", "amount": 2.5}],  # declared only
    ]
    for records in pages:
        fast = records_batch(records, declared, flat=nested == "flatten")
        slow = batch_by_value(
            [flatten(r) for r in records] if nested == "flatten" else records, list(declared)
        )
        assert fast.schema.names == slow.schema.names
        assert fast.to_pylist() == slow.to_pylist()


def test_a_range_read_overlaps_pages_and_gives_each_window_its_own_rows(
    api: tuple[str, ApiState],
) -> None:
    """The range read fetches the next windows' pages while earlier ones are processed; each
    window still gets exactly the rows a read of that window gives, and a failing page fails
    the range."""
    base, state = api
    spec = rest_spec(
        base,
        "/v1/page",
        paginator={"type": "page_number", "total_path": "total_pages", "total_is_pages": True},
        retry={"attempts": 2, "backoff_seconds": 0.01},
    )
    assert isinstance(spec.source, RestSource)
    reader = RestReader(spec.source, dataset="orders")
    start = datetime(2026, 10, 1, tzinfo=UTC)
    windows = [Window(start + timedelta(days=d), start + timedelta(days=d + 1)) for d in range(3)]
    types = {"id": pa.string(), "created_at": pa.timestamp("us", tz="UTC")}

    def ids(chunks: Iterator[Chunk]) -> list[str]:
        return sorted(i for chunk in chunks for i in chunk.batch.column("id").to_pylist())

    one_by_one = [ids(reader.read(window, types)) for window in windows]
    ranged = RangeReader(reader, windows)
    assert [ids(ranged.read(window, types)) for window in windows] == one_by_one
    assert [len(day) for day in one_by_one] == [PER_DAY] * 3

    state.broken_page = 2
    with pytest.raises(SourceError, match="503"):
        for window in windows:
            ids(RangeReader(reader, windows).read(window, types))
