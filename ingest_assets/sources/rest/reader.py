"""REST API sources: a JSON endpoint read page by page for a window.

Pages are fetched with ``requests``; retries (429, 5xx, timeouts, connection errors) use tenacity
with exponential backoff and jitter, honouring ``Retry-After`` (seconds or an HTTP date) within a
floor and a cap, so ``Retry-After: 0`` never becomes a hot loop. A per-source rate limit
(requests-ratelimiter / pyrate-limiter) is shared by every request of the source in the process.
Where pages are addressable up front (page numbers or offsets with a known total) they are fetched
concurrently. Secrets come from environment variables and never appear in messages: query
parameters that carry a key are shown as ``***``.
"""

from __future__ import annotations

import http.client
import os
import queue
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import pyarrow as pa
import requests
from pyrate_limiter import Limiter, Rate
from requests_ratelimiter import LimiterAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential_jitter
from urllib3.exceptions import HTTPError as Urllib3Error

from ingest_assets.errors import SourceError, SourceUnavailable
from ingest_assets.redaction import register_secret
from ingest_assets.sources.base import Chunk, ReadPlan
from ingest_assets.sources.object_store.formats import json_kind
from ingest_assets.sources.records import records_batch
from ingest_assets.sources.rest.auth import RestApiSettings, TokenAuth
from ingest_assets.sources.rest.paginators import Page, PageRequest, Paginator, path_get
from ingest_assets.sources.rest.spec import PARAM_PLACEHOLDER, RestSource
from ingest_assets.windows import Window

_RETRY_STATUSES = {429, 500, 502, 503, 504}
_LIMITERS: dict[str, LimiterAdapter] = {}
_LIMITERS_LOCK = threading.Lock()


class _Retryable(Exception):
    """A page answer worth another try; carries the server's Retry-After, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _preview(body: Any) -> str:
    """The start of a body, for messages."""
    try:
        text = orjson.dumps(body).decode()
    except TypeError:
        text = f"a JSON {json_kind(body)} nested too deep to show"
    return text if len(text) <= 160 else text[:160] + "..."


def _origin(url: str) -> tuple[str, str, int | None]:
    """A URL's scheme, host and port (the default port made explicit)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


def _origin_text(url: str) -> str:
    scheme, host, port = _origin(url)
    return f"{scheme}://{host}:{port}"


class _Session(requests.Session):
    """A session that drops every credential on a redirect to another origin.

    requests drops the ``Authorization`` header there; an API key in another header or in the
    query string would still follow, so those are dropped too.
    """

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = secrets

    def rebuild_auth(self, prepared_request: Any, response: Any) -> None:
        super().rebuild_auth(prepared_request, response)
        if _origin(response.request.url) == _origin(prepared_request.url):
            return
        for name, value in list(prepared_request.headers.items()):
            if any(secret in value for secret in self._secrets):
                del prepared_request.headers[name]
        prepared_request.url = _without_secrets(prepared_request.url, self._secrets)


def _without_secrets(url: str, secrets: list[str]) -> str:
    """``url`` without the query parameters whose value is a secret."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(value in secrets for _, value in pairs):
        return url
    kept = [(key, value) for key, value in pairs if value not in secrets]
    return urlunsplit(parts._replace(query=urlencode(kept)))


class RestReader:
    """Reads a dataset's windows from a JSON HTTP API.

    Args:
        source: The dataset's source declaration.
        dataset: The dataset's name, for messages.
        environ: Where secrets are looked up (the process environment by default).
    """

    def __init__(
        self,
        source: RestSource,
        *,
        dataset: str,
        environ: Mapping[str, str] | None = None,
        api: RestApiSettings | None = None,
    ) -> None:
        self.source = source
        self.dataset = dataset
        base_url = api.base_url.rstrip("/") if api is not None else source.base_url
        if base_url is None:
            raise SourceError(
                f"Dataset '{dataset}': source.resource {source.resource!r} gave no base_url.",
                fix="Set base_url on the RestApi resource.",
            )
        self.base_url = base_url
        self._headers = {**(api.headers if api is not None else {}), **source.headers}
        self._environ = environ if environ is not None else os.environ
        self._secrets: list[str] = []
        token = api.token if api is not None else None
        self._auth = source.auth.build() if not token else TokenAuth(token)
        self._local = threading.local()

    @property
    def timeout_seconds(self) -> float:
        """Per request."""
        return self.source.timeout_seconds

    # -- the SourceReader protocol -----------------------------------------------------------

    def plan(self, window: Window) -> ReadPlan:
        """A REST window reads one endpoint; its size is known only after reading."""
        return ReadPlan([self._display(self._url())], 0)

    def read(self, window: Window, arrow_types: dict[str, pa.DataType]) -> Iterator[Chunk]:
        """Fetch the window's pages and yield their records as Arrow batches."""
        return self.read_range([window], arrow_types)

    def probe(self, window: Window) -> str:
        """Fetch the window's first page once, with the declared auth; no retries.

        Returns:
            What answered, for people.

        Raises:
            SourceError: the API did not answer, refused the credentials, or answered something
                that is not a page of records.
        """
        request = self._first_request(window)
        self.source.paginator.build().init_request(request)
        try:
            response, body = self._get_once(request)
        except _Retryable as exc:
            raise SourceUnavailable(
                f"Dataset '{self.dataset}': {exc}.",
                fix="Check that the API is up and reachable from here (base_url, endpoint).",
            ) from None
        records = self._records(body, response.url)
        return f"HTTP {response.status_code}, {len(records)} records on the first page"

    def read_range(
        self, windows: list[Window], arrow_types: dict[str, pa.DataType]
    ) -> Iterator[Chunk]:
        """Read consecutive windows with the pages of the next ones already on their way.

        A thread walks the windows' pages in order into a small queue while the caller
        validates and stages the pages before them, so the API's latency overlaps the work.
        The queue holds at most ``2 x concurrency`` pages.
        """
        pages: queue.Queue[tuple[int, str, list[Any]] | BaseException | None] = queue.Queue(
            maxsize=2 * max(1, self.source.concurrency)
        )
        stop = threading.Event()

        def put(item: tuple[int, str, list[Any]] | BaseException | None) -> bool:
            while not stop.is_set():
                try:
                    pages.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def walk() -> None:
            try:
                for index, window in enumerate(windows):
                    for url, records in self._pages(window):
                        if not put((index, url, records)):
                            return
                put(None)
            except BaseException as exc:  # handed to the reader, raised there
                put(exc)

        walker = threading.Thread(target=walk, name=f"{self.dataset}-pages", daemon=True)
        walker.start()
        first_rows = [1] * len(windows)
        try:
            while (item := pages.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                index, url, records = item
                if records:
                    shown = self._display(url)
                    try:
                        batch = records_batch(
                            records, arrow_types, flat=self.source.nested == "flatten"
                        )
                    except RecursionError:
                        raise SourceError(
                            f"Dataset '{self.dataset}': a record of {shown} nests values more "
                            "than 250 levels deep. Nothing was written.",
                            fix="Declare only flat fields, or ask the API for a shallower shape.",
                        ) from None
                    yield Chunk(batch, shown, first_rows[index], windows[index].start)
                    first_rows[index] += len(records)
        finally:
            stop.set()
            walker.join(timeout=5)

    # -- pages -------------------------------------------------------------------------------

    def _url(self) -> str:
        return self.base_url + self.source.endpoint

    def _bounds(self, window: Window) -> dict[str, str]:
        return {"start": self._render(window.start), "end": self._render(window.end)}

    def _params(self, window: Window) -> dict[str, Any]:
        return self._rendered(self.source.params, self._bounds(window))

    def _rendered(self, value: Any, bounds: dict[str, str]) -> Any:
        """``value`` with {start} and {end} in its strings replaced by the window's bounds."""
        if isinstance(value, str):
            return PARAM_PLACEHOLDER.sub(lambda found: bounds[found.group(1)], value)
        if isinstance(value, dict):
            return {key: self._rendered(item, bounds) for key, item in value.items()}
        if isinstance(value, list):
            return [self._rendered(item, bounds) for item in value]
        return value

    def _render(self, moment: datetime) -> str:
        fmt = self.source.time_format
        utc = moment.astimezone(UTC)
        if fmt == "iso":
            return utc.isoformat().replace("+00:00", "Z")
        if fmt == "epoch":
            return str(int(utc.timestamp()))
        if fmt == "epoch_ms":
            return str(int(utc.timestamp() * 1000))
        return utc.strftime(fmt)

    def _first_request(self, window: Window) -> PageRequest:
        body = self.source.body
        return PageRequest(
            self._url(),
            self._params(window),
            None if body is None else self._rendered(body, self._bounds(window)),
        )

    def _pages(self, window: Window) -> Iterator[tuple[str, list[Any]]]:
        """The window's pages, as the declared paginator walks them."""
        paginator = self.source.paginator.build()
        request = self._first_request(window)
        paginator.init_request(request)
        page = self._page(request)
        yield page.url, page.records
        total = paginator.total_pages(page)
        if total is not None:
            yield from self._addressed_pages(paginator, request, min(total, paginator.max_pages))
            return
        for _ in range(1, paginator.max_pages):
            paginator.update_state(page)
            if not paginator.has_next_page:
                return
            paginator.update_request(request)
            page = self._page(request)
            yield page.url, page.records

    def _addressed_pages(
        self, paginator: Paginator, first: PageRequest, pages: int
    ) -> Iterator[tuple[str, list[Any]]]:
        """Pages 1 .. pages - 1, fetched concurrently, yielded in order."""
        workers = max(1, self.source.concurrency)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            # A sliding window of requests in flight: pages come back in order and at most
            # 2 x concurrency of them are held in memory at once.
            pending: deque[Future[Page]] = deque()
            index = 1
            while index < pages or pending:
                while index < pages and len(pending) < 2 * workers:
                    pending.append(
                        pool.submit(self._page, paginator.request_for_page(first, index))
                    )
                    index += 1
                page = pending.popleft().result()
                yield page.url, page.records

    def _page(self, request: PageRequest) -> Page:
        response, body = self._get(request)
        return Page(response.url, body, self._records(body, response.url), response.links)

    def _records(self, body: Any, url: str) -> list[Any]:
        """The page's records; anything but a list of objects at ``records_path`` is an error.

        A page that answers ``null``, a number, an error object or a body without the records
        would otherwise load as an empty window and replace the rows loaded before.
        """
        path = self.source.records_path
        records = path_get(body, path)
        if isinstance(records, list):
            for number, record in enumerate(records, start=1):
                if not isinstance(record, Mapping):
                    raise SourceError(
                        f"Dataset '{self.dataset}': record {number} of {self._display(url)} is "
                        f"a JSON {json_kind(record)}, not an object. Nothing was written.",
                        fix="Point source.records_path at the list of record objects.",
                    )
            return records
        where = f"at records_path {path!r}" if path else "as its body"
        found = "nothing" if records is None else f"a JSON {json_kind(records)}"
        raise SourceError(
            f"Dataset '{self.dataset}': {self._display(url)} answered {found} {where}, not a "
            f"list of records (the body was {self._redact(_preview(body))}). Nothing was "
            "written; the window keeps its previous rows.",
            fix="Check the API's answer (an error reported with HTTP 200?) and point "
            "source.records_path at the list of records ('' when the body is the list).",
        )

    # -- HTTP --------------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = _Session(self._secrets)
            session.headers.update(self._headers)
            rps = self.source.requests_per_second
            if rps:
                key = f"{self.dataset}:{self.base_url}"
                with _LIMITERS_LOCK:
                    if key not in _LIMITERS:
                        # One request per 1/rps seconds: a smooth rate, not bursts of rps.
                        interval_ms = max(1, round(1000 / rps))
                        _LIMITERS[key] = LimiterAdapter(
                            limiter=Limiter(Rate(1, interval_ms)), per_host=False, bucket_name=key
                        )
                    adapter = _LIMITERS[key]
                session.mount("http://", adapter)
                session.mount("https://", adapter)
            self._local.session = session
        return session

    def secret(self, variable: str) -> str:
        """The variable's value, kept out of every message and log (SourceError if unset)."""
        value = self._environ.get(variable)
        if not value:
            raise SourceError(
                f"Dataset '{self.dataset}': the environment variable {variable} named in "
                "source.auth is not set.",
                fix=f"Set {variable} for the code location.",
            )
        self.keep_secret(value)
        return value

    def keep_secret(self, value: str) -> None:
        """Keep ``value`` out of every message and log from now on."""
        if value not in self._secrets:
            self._secrets.append(value)
            register_secret(value)

    def _get(self, request: PageRequest) -> tuple[requests.Response, Any]:
        retry = self.source.retry

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, _Retryable) and error.retry_after is not None:
                return min(
                    max(error.retry_after, retry.retry_after_floor_seconds),
                    retry.retry_after_cap_seconds,
                )
            return backoff(state)

        backoff = wait_exponential_jitter(
            multiplier=retry.backoff_seconds,
            max=retry.max_backoff_seconds,
            jitter=retry.backoff_seconds,
        )
        retrying = Retrying(
            stop=stop_after_attempt(retry.attempts),
            wait=wait,
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )
        try:
            return retrying(self._get_once, request)
        except _Retryable as exc:
            raise SourceUnavailable(
                f"Dataset '{self.dataset}': {self._redact(str(exc))} (after {retry.attempts} "
                "attempt(s)). Nothing was written; the window keeps its previous rows.",
                fix="Check the API's status; the load is safe to retry.",
            ) from None

    def _get_once(self, request: PageRequest) -> tuple[requests.Response, Any]:
        url, headers, query = request.url, dict[str, str](), dict(request.params or {})
        # Credentials go to the declared API only, never to a host a next link points at.
        trusted = _origin(url) == _origin(self.base_url)
        basic = self._auth.apply(headers, query, self) if trusted else None
        if not trusted:  # a next link that echoes the query carries an API key with it
            url = _without_secrets(url, self._secrets)
        try:
            response = self._session().request(
                self.source.method,
                url,
                params=query or None,
                json=request.json,
                headers=headers,
                auth=basic,
                timeout=self.source.timeout_seconds,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Retryable(f"{self._display(url)} did not answer: {type(exc).__name__}") from None
        except (requests.exceptions.ChunkedEncodingError, Urllib3Error, http.client.HTTPException,
                ConnectionError) as exc:  # fmt: skip
            raise _Retryable(
                f"{self._display(url)} broke off its answer: {type(exc).__name__}"
            ) from None
        shown = self._display(response.url)
        if response.status_code in (401, 403) and not trusted:
            raise SourceError(
                f"Dataset '{self.dataset}': {shown} answered HTTP {response.status_code}; it is "
                f"outside {_origin_text(self.base_url)}, so no credentials were sent to "
                "it. Nothing was written.",
                fix="Credentials are sent only to base_url's scheme, host and port; point "
                "base_url at the host the pages come from.",
            )
        if response.status_code == 401 and self._auth.refresh(self):
            # A token that expired early was renewed: try again.
            raise _Retryable(f"{shown} answered HTTP 401 with an expired token")
        if response.status_code in _RETRY_STATUSES:
            raise _Retryable(
                f"{shown} answered HTTP {response.status_code}",
                parse_retry_after(response.headers.get("Retry-After")),
            )
        if response.status_code >= 400:
            raise SourceError(
                f"Dataset '{self.dataset}': {shown} answered HTTP {response.status_code}. "
                "Nothing was written; the window keeps its previous rows.",
                fix="Check source.auth and its variables (401/403) or base_url, endpoint and "
                "params (404/400).",
            )
        return response, self._json(response, shown)

    def _json(self, response: requests.Response, shown: str) -> Any:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            if "depth" in str(exc).lower():
                raise SourceError(
                    f"Dataset '{self.dataset}': {shown} answered JSON that nests values more "
                    "than 1,024 levels deep. Nothing was written.",
                    fix="Ask the API for a shallower shape; such a page cannot be loaded.",
                ) from None
            # A body cut short (a dropped connection) is worth another try; one that is not
            # JSON at all fails after the retries with what it was.
            raise _Retryable(
                f"{shown} answered HTTP {response.status_code} with a body that is not JSON: "
                f"{response.text[:120]!r}"
            ) from None

    def _display(self, url: str) -> str:
        """The URL as shown to people: secret query values replaced by ***."""
        parts = urlsplit(url)
        query = [
            (key, "***" if value in self._secrets else value)
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
        ]
        return self._redact(urlunsplit(parts._replace(query=urlencode(query, safe="*:"))))

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text
