"""REST answers that used to load an empty window, crash, leak a credential or go unretried."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingest_assets.errors import SourceError
from ingest_assets.sources.rest.reader import RestReader
from ingest_assets.spec import DatasetSpec
from ingest_assets_tests.api_server import ApiState, make_records
from ingest_assets_tests.conftest import query, records_api, step_failure
from ingest_assets_tests.test_rest import (
    DAY,
    EXPECTED,
    PAGINATORS,
    PER_DAY,
    load,
    loaded_ids,
    rest_spec,
)

SECRET = "s3cr3t-token-value"


@pytest.fixture
def other() -> Iterator[tuple[str, ApiState]]:
    """A second server: another origin that next links may point at."""
    with records_api() as served:
        yield served


@pytest.mark.parametrize(
    ("body", "records_path", "expected"),
    [
        (b"null", "data", "answered nothing at records_path 'data'"),
        (b"42", "data", "answered nothing at records_path 'data'"),
        (b'"text"', "data", "answered nothing at records_path 'data'"),
        (b"true", "data", "answered nothing at records_path 'data'"),
        (b'{"error": "quota exceeded"}', "data", 'the body was {"error":"quota exceeded"}'),
        (b'[{"id": "x"}]', "data", "answered nothing at records_path 'data'"),
        (b'{"data": null}', "data", "answered nothing at records_path 'data'"),
        (b'{"data": {"id": "x"}}', "data", "answered a JSON object at records_path 'data'"),
        (b'{"data": [1, 2]}', "data", "record 1 of"),
        (b'{"data": []}', "", "answered a JSON object as its body"),
    ],
)
def test_an_answer_without_records_fails_and_keeps_the_window(
    api: tuple[str, ApiState], data_dir: Path, body: bytes, records_path: str, expected: str
) -> None:
    base, state = api
    spec = rest_spec(base, "/v1/all", records_path="data")
    assert load(spec, data_dir).success
    state.body = body
    spec = rest_spec(base, "/v1/all", records_path=records_path)
    message = step_failure(load(spec, data_dir))
    assert expected in message and "Dataset 'orders'" in message
    assert loaded_ids(data_dir) == EXPECTED


def test_an_empty_list_of_records_is_an_empty_page(api: tuple[str, ApiState]) -> None:
    base, state = api
    state.body = b'{"data": []}'
    spec = rest_spec(base, "/v1/all")
    reader = RestReader(spec.source, dataset="orders")  # type: ignore[arg-type]
    assert "0 records" in reader.probe(_window())


def _window() -> Any:
    from datetime import UTC, datetime

    from ingest_assets.windows import Window

    return Window(datetime(2026, 10, 2, tzinfo=UTC), datetime(2026, 10, 3, tzinfo=UTC))


def test_a_deeply_nested_record_fails_clearly(api: tuple[str, ApiState], data_dir: Path) -> None:
    base, state = api
    for levels, expected in ((1_000, "nests values more than 250 levels"),
                             (2_000, "nests values more than 1,024 levels")):  # fmt: skip
        record = orjson.dumps({**make_records(DAY, 1)[0], "customer": "x"})
        deep = b"[" * levels + b"]" * levels
        state.body = b'{"data": [' + record[:-1] + b',"extra":' + deep + b"}]}"
        for nested in ("json", "flatten"):
            message = step_failure(load(rest_spec(base, "/v1/all", nested=nested), data_dir))
            assert expected in message, message


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("html", "answered HTTP 200 with a body that is not JSON (text/html)"),
        ("no_token", "answered without an access_token (it gave: expires_in, token_type)"),
        ("close", "did not answer: ConnectionError"),
    ],
)
def test_an_oauth2_token_endpoint_that_misbehaves_fails_clearly(
    api: tuple[str, ApiState], data_dir: Path, monkeypatch: pytest.MonkeyPatch, mode: str,
    expected: str,
) -> None:  # fmt: skip
    base, state = api
    state.auth, state.token_mode = "oauth2", mode
    monkeypatch.setenv("CLIENT_ID", "client-id")
    monkeypatch.setenv("CLIENT_SECRET", "client-secret-value")
    auth = {"type": "oauth2_client_credentials", "token_url": f"{base}/oauth/token",
            "client_id_env": "CLIENT_ID", "client_secret_env": "CLIENT_SECRET"}  # fmt: skip
    message = step_failure(load(rest_spec(base, "/v1/all", auth=auth), data_dir))
    assert "OAuth2 token endpoint" in message and expected in message
    assert "client-secret-value" not in message and "unexpected" not in message


def test_params_with_unknown_placeholders_are_refused_and_literal_braces_kept(
    api: tuple[str, ApiState], data_dir: Path
) -> None:
    base, state = api
    with pytest.raises(ValueError, match=r"params.since: unknown placeholder \{yesterday\}"):
        rest_spec(base, "/v1/all", params={"since": "{yesterday}"})
    params = {"start": "{start}", "end": "{end}", "filter": '{"status": ["paid"]}'}
    result = load(rest_spec(base, "/v1/all", params=params), data_dir)
    assert result.success, step_failure(result)
    assert "filter=%7B%22status%22%3A+%5B%22paid%22%5D%7D" in state.seen[-1][1]


AUTHS: list[tuple[str, dict[str, Any]]] = [
    ("bearer", {"type": "bearer", "token_env": "API_TOKEN"}),
    ("api_key_header", {"type": "api_key", "name": "X-API-Key", "key_env": "API_TOKEN"}),
    (
        "api_key_query",
        {"type": "api_key", "name": "api_key", "location": "query", "key_env": "API_TOKEN"},
    ),
    ("basic", {"type": "basic", "username_env": "API_USER", "password_env": "API_TOKEN"}),
    (
        "oauth2",
        {
            "type": "oauth2_client_credentials",
            "token_url": "{base}/oauth/token",
            "client_id_env": "CLIENT_ID",
            "client_secret_env": "CLIENT_SECRET",
        },
    ),
]


def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_USER", "user")
    monkeypatch.setenv("API_TOKEN", SECRET)
    monkeypatch.setenv("CLIENT_ID", "client-id")
    monkeypatch.setenv("CLIENT_SECRET", "client-secret-value")


@pytest.mark.parametrize(("mode", "auth"), AUTHS)
@pytest.mark.parametrize("style", ["next", "link"])
def test_no_credential_follows_a_next_link_to_another_host(
    api: tuple[str, ApiState], other: tuple[str, ApiState], data_dir: Path,
    monkeypatch: pytest.MonkeyPatch, mode: str, auth: dict[str, Any], style: str,
) -> None:  # fmt: skip
    base, state = api
    other_base, other_state = other
    state.auth, state.next_base = mode, other_base
    _credentials(monkeypatch)
    auth = {k: v.format(base=base) if isinstance(v, str) else v for k, v in auth.items()}
    paginator = (
        {"type": "next_url", "next_url_path": "links.next"}
        if style == "next"
        else {"type": "link_header"}
    )
    result = load(rest_spec(base, f"/v1/{style}", paginator=paginator, auth=auth), data_dir)
    assert other_state.seen, "the next page must have been asked of the other server"
    for headers, query_string in other_state.seen:
        sent = " ".join([*headers.values(), query_string])
        assert "Authorization" not in headers and "X-API-Key" not in headers
        assert SECRET not in sent and "token-" not in sent
    # The other server needs no credentials here, so the pages load; had it refused, the
    # failure would say why no credentials went there.
    assert result.success, step_failure(result)


def test_a_foreign_host_that_wants_credentials_fails_saying_none_were_sent(
    api: tuple[str, ApiState], other: tuple[str, ApiState], data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    base, state = api
    other_base, other_state = other
    state.auth, other_state.auth, state.next_base = "bearer", "bearer", other_base
    _credentials(monkeypatch)
    paginator = {"type": "next_url", "next_url_path": "links.next"}
    auth = {"type": "bearer", "token_env": "API_TOKEN"}
    spec = rest_spec(base, "/v1/next", paginator=paginator, auth=auth)
    message = step_failure(load(spec, data_dir))
    assert "so no credentials were sent to it" in message and other_base in message


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def debug_logs() -> Iterator[_Records]:
    """Every log record of the process at DEBUG, from every logger, formatted."""
    handler = _Records()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.mark.parametrize(("mode", "auth"), AUTHS)
def test_no_secret_reaches_any_log_at_debug(
    api: tuple[str, ApiState], data_dir: Path, monkeypatch: pytest.MonkeyPatch,
    debug_logs: _Records, mode: str, auth: dict[str, Any],
) -> None:  # fmt: skip
    base, state = api
    state.auth = mode
    _credentials(monkeypatch)
    auth = {k: v.format(base=base) if isinstance(v, str) else v for k, v in auth.items()}
    spec = rest_spec(base, "/v1/page", paginator={"type": "page_number"}, auth=auth)
    assert load(spec, data_dir).success
    state.fail_first = state.requests + 10  # then a failing load
    spec = rest_spec(base, "/v1/page", paginator={"type": "page_number"}, auth=auth,
                     retry={"attempts": 2, "backoff_seconds": 0.01})  # fmt: skip
    assert not load(spec, data_dir).success
    text = "\n".join(debug_logs.lines)
    assert "GET /v1/page" in text, "urllib3 logs each request at DEBUG"
    for secret in (SECRET, "client-secret-value", "token-1"):
        assert secret not in text


@pytest.mark.parametrize(("endpoint", "paginator", "records_path"), PAGINATORS)
def test_every_paginator_is_exact_under_30_percent_faults_with_cut_bodies_and_resets(
    api: tuple[str, ApiState], data_dir: Path, endpoint: str, paginator: dict[str, Any],
    records_path: str,
) -> None:  # fmt: skip
    base, state = api
    # 1 - 0.88**3: about 32% of answers are a 500, a body cut short or a reset connection.
    state.fail_rate, state.cut_rate, state.reset_rate = 0.12, 0.12, 0.12
    spec = rest_spec(base, endpoint, paginator=paginator, records_path=records_path,
                     retry={"attempts": 12, "backoff_seconds": 0.01})  # fmt: skip
    result = load(spec, data_dir)
    assert result.success, step_failure(result)
    assert query(data_dir, "SELECT count(*), count(DISTINCT id) FROM raw.orders") == [
        (PER_DAY, PER_DAY)
    ]
    assert loaded_ids(data_dir) == EXPECTED


def test_a_cut_body_alone_is_retried_not_reported(api: tuple[str, ApiState]) -> None:
    base, state = api
    state.cut_rate = 1.0
    spec: DatasetSpec = rest_spec(base, "/v1/all", retry={"attempts": 2, "backoff_seconds": 0.01})
    reader = RestReader(spec.source, dataset="orders")  # type: ignore[arg-type]
    with pytest.raises(SourceError, match=r"\(after 2 attempt\(s\)\)") as failed:
        list(reader.read(_window(), {}))
    assert failed.value.transient and state.requests == 2
