"""A real HTTP API for the tests, on a free 127.0.0.1 port: every paginator, every auth scheme,
and injectable faults (429 with Retry-After, 500s, slow answers, malformed and drifted pages)."""

from __future__ import annotations

import base64
import json
import math
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

PAGE_SIZE = 50


def make_records(day: str, count: int) -> list[dict[str, Any]]:
    """Orders of one day, spread over it, with a nested customer object."""
    base = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return [
        {
            "id": f"{day}-{i:05d}",
            "amount": round(i * 0.75 + 1, 2),
            "status": ["new", "paid", "shipped"][i % 3],
            "created_at": (base + timedelta(seconds=i * 86_400 // count))
            .isoformat()
            .replace("+00:00", "Z"),
            "customer": {"name": f"c{i}", "country": ["DE", "FR", "US"][i % 3]},
        }
        for i in range(count)
    ]


@dataclass
class ApiState:
    """What the server serves and how it misbehaves; tests change it between loads."""

    records: list[dict[str, Any]] = field(default_factory=list)
    page_size: int = PAGE_SIZE
    auth: str = "none"  # none | bearer | api_key_header | api_key_query | basic | oauth2
    secret: str = "s3cr3t-token-value"
    token_lifetime: float = 3600.0
    fail_rate: float = 0.0  # share of answers that are HTTP 500
    fail_first: int = 0  # the first N answers are HTTP 500
    retry_after: list[str] = field(default_factory=list)  # 429 answers to give first, in order
    slow_seconds: float = 0.0
    malformed_page: int | None = None
    drift_page: int | None = None
    broken_page: int | None = None  # always HTTP 503
    body: bytes | None = None  # answer every page with this body and HTTP 200
    cut_rate: float = 0.0  # share of answers cut off mid-body (the connection closes)
    reset_rate: float = 0.0  # share of requests whose connection closes with no answer
    next_base: str | None = None  # where next links point (another server)
    token_mode: str = "ok"  # ok | html | no_token | close: how the token endpoint answers
    seen: list[tuple[dict[str, str], str]] = field(default_factory=list)  # headers, query
    requests: int = 0
    tokens_issued: int = 0
    request_times: list[float] = field(default_factory=list)
    _tokens: dict[str, float] = field(default_factory=dict)
    _rng: random.Random = field(default_factory=lambda: random.Random(7))
    _lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    state: ApiState
    base: str

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(raw)

    def _drop(self) -> None:
        """Close the connection at once (the client sees a reset or an empty answer)."""
        self.close_connection = True
        self.connection.shutdown(2)

    def _send_cut(self, status: int, body: Any) -> None:
        """Announce the whole body, send half of it, and close the connection."""
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw[: len(raw) // 2])
        self.wfile.flush()
        self._drop()

    def do_POST(self) -> None:  # a search endpoint, or the OAuth2 token endpoint
        state = self.state
        if self.path.startswith("/v1/search"):
            self._search()
            return
        if state.token_mode == "close":
            self._drop()
            return
        if state.token_mode == "html":
            raw = b"<html><body>Sign in</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
            return
        if state.token_mode == "no_token":
            self._send(200, {"token_type": "bearer", "expires_in": 60})
            return
        expected = base64.b64encode(b"client-id:client-secret-value").decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            self._send(401, {"error": "invalid_client"})
            return
        with state._lock:
            state.tokens_issued += 1
            token = f"token-{state.tokens_issued}"
            state._tokens[token] = time.monotonic() + state.token_lifetime
        self._send(200, {"access_token": token, "expires_in": state.token_lifetime})

    def _search(self) -> None:
        """POST /v1/search?page=N with {"filter": {"from": ..., "to": ...}}: a page of records."""
        state = self.state
        length = int(self.headers.get("Content-Length", 0))
        request = json.loads(self.rfile.read(length) or b"null")
        with state._lock:
            state.requests += 1
            state.seen.append((dict(self.headers.items()), json.dumps(request)))
        window = request.get("filter", {}) if isinstance(request, dict) else {}
        if not {"from", "to"} <= window.keys():
            self._send(400, {"error": "filter.from and filter.to are required"})
            return
        rows = [r for r in state.records if window["from"] <= r["created_at"] < window["to"]]
        query = {key: values[0] for key, values in parse_qs(urlsplit(self.path).query).items()}
        page = int(query.get("page", 1))
        self._send(200, {"data": rows[(page - 1) * state.page_size : page * state.page_size]})

    def _authorized(self, query: dict[str, str]) -> bool:
        state, header = self.state, self.headers.get("Authorization", "")
        if state.auth == "bearer":
            return header == f"Bearer {state.secret}"
        if state.auth == "api_key_header":
            return self.headers.get("X-API-Key") == state.secret
        if state.auth == "api_key_query":
            return query.get("api_key") == state.secret
        if state.auth == "basic":
            return header == "Basic " + base64.b64encode(f"user:{state.secret}".encode()).decode()
        if state.auth == "oauth2":
            token = header.removeprefix("Bearer ")
            return state._tokens.get(token, 0) > time.monotonic()
        return True

    def do_GET(self) -> None:
        state = self.state
        parts = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        with state._lock:
            state.requests += 1
            state.request_times.append(time.monotonic())
            state.seen.append((dict(self.headers.items()), parts.query))
            fail = state._rng.random() < state.fail_rate or state.requests <= state.fail_first
            retry_after = state.retry_after.pop(0) if state.retry_after else None
            reset = state._rng.random() < state.reset_rate
            cut = state._rng.random() < state.cut_rate
        if reset:
            self._drop()
            return
        if state.body is not None:
            self._send(200, state.body)
            return
        if not self._authorized(query):
            self._send(401, {"error": "unauthorized"})
            return
        if retry_after is not None:
            if retry_after.startswith("in:"):  # an HTTP date so many seconds from now
                moment = datetime.now(UTC) + timedelta(seconds=float(retry_after[3:]))
                retry_after = format_datetime(moment, usegmt=True)
            self._send(429, {"error": "slow down"}, {"Retry-After": retry_after})
            return
        if fail:
            self._send(500, {"error": "flaky"})
            return
        if state.slow_seconds:
            time.sleep(state.slow_seconds)
        start, end = query.get("start", ""), query.get("end", "~")
        rows = [r for r in state.records if start <= r["created_at"] < end]
        style = parts.path.rsplit("/", 1)[-1]
        if style == "offset":
            offset, limit = int(query.get("offset", 0)), int(query.get("limit", state.page_size))
            page = offset // limit + 1
            chunk = rows[offset : offset + limit]
        else:
            page = int(query.get("page", query.get("cursor", "1")) or 1)
            chunk = rows[(page - 1) * state.page_size : page * state.page_size]
        if page == state.broken_page:
            self._send(503, {"error": "down"})
            return
        if page == state.malformed_page:
            self._send(200, b'{"data": [{"id": "x", ')
            return
        if page == state.drift_page:
            chunk = [{**r, "amount": "not a number"} for r in chunk]
        pages = max(1, math.ceil(len(rows) / state.page_size))
        more = page < pages
        nxt = {**query, "page": str(page + 1)}
        base = state.next_base or self.base
        if cut:
            self._send_cut(200, {"data": chunk, "meta": {"total": len(rows)}})
            return
        if style == "page":
            self._send(200, {"data": chunk, "meta": {"total": len(rows)}})
        elif style == "offset":
            self._send(200, {"items": chunk, "total": len(rows)})
        elif style == "cursor":
            self._send(200, {"data": chunk, "next_cursor": str(page + 1) if more else None})
        elif style == "next":
            link = f"{base}{parts.path}?{urlencode(nxt)}" if more else None
            self._send(200, {"data": chunk, "links": {"next": link}})
        elif style == "link":
            headers = {"Link": f'<{base}{parts.path}?{urlencode(nxt)}>; rel="next"'} if more else {}
            self._send(200, {"data": chunk}, headers)
        else:  # "all": no pagination
            self._send(200, {"data": rows})


@contextmanager
def api_server(port: int) -> Iterator[tuple[str, ApiState]]:
    """Serve an ``ApiState`` on 127.0.0.1:``port``; yields the base URL and the state."""
    state = ApiState()
    base = f"http://127.0.0.1:{port}"
    handler = type("Handler", (_Handler,), {"state": state, "base": base})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base, state
    finally:
        server.shutdown()
        server.server_close()
