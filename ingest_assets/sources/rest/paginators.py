"""How the pages of a REST window are walked: one model (the YAML) and one class per style.

A paginator follows dlt's protocol: ``init_request`` shapes the first request, ``update_state``
reads each page that came back, ``update_request`` turns the request into the next page's (while
``has_next_page``). A paginator that can tell the number of pages from the first one
(``total_pages``) has the rest fetched concurrently, each by ``request_for_page``.

Add a style of your own without editing this package: subclass :class:`Paginator` and name it in
YAML, ``paginator: {type: custom, ref: my_pkg.paging:MyPaginator, options: {...}}`` (the options
are its constructor's keyword arguments).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator

from ingest_assets.spec.base import Strict, discriminator
from ingest_assets.spec.refs import import_reference

#: A safety stop for runaway pagination.
MAX_PAGES = 100_000


def path_get(body: Any, path: str) -> Any:
    """Follow a dotted path ('data.items') into a JSON body; None where it leads nowhere."""
    value = body
    for part in [p for p in path.split(".") if p]:
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


@dataclass
class PageRequest:
    """One request for a page: its URL, query parameters and (for POST) JSON body."""

    url: str
    params: dict[str, Any] | None = None
    json: Any = None


@dataclass(frozen=True)
class Page:
    """A page that came back: the URL that answered, its body, records and Link header."""

    url: str
    body: Any
    records: list[Any]
    links: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


class Paginator(ABC):
    """Walks the pages of one window; a new instance per window.

    Attributes:
        has_next_page: Whether another page follows the last one read.
        max_pages: The most pages read per window.
    """

    def __init__(self, *, max_pages: int = MAX_PAGES) -> None:
        self.has_next_page = True
        self.max_pages = max_pages

    def init_request(self, request: PageRequest) -> None:  # noqa: B027 (optional to override)
        """Shape the window's first request (e.g. add the first page's number)."""

    @abstractmethod
    def update_state(self, page: Page) -> None:
        """Read a page that came back: what the next one is, or that there is none."""

    @abstractmethod
    def update_request(self, request: PageRequest) -> None:
        """Turn ``request`` into the next page's request."""

    def total_pages(self, first: Page) -> int | None:
        """The window's number of pages, when the first page tells it (None if it does not)."""
        return None

    def request_for_page(self, request: PageRequest, index: int) -> PageRequest:
        """The request of page ``index`` (0 the first), for paginators that know their total."""
        raise NotImplementedError(f"{type(self).__name__} cannot address pages")


def _with(request: PageRequest, **params: Any) -> PageRequest:
    return replace(request, params={**(request.params or {}), **params})


class SinglePage(Paginator):
    """The window is one page."""

    def update_state(self, page: Page) -> None:
        """There is never a next page."""
        self.has_next_page = False

    def update_request(self, request: PageRequest) -> None:
        """Never called."""


class PageNumberPaginator(Paginator):
    """``?page=1``, ``?page=2``, ... until an empty page (or the total's number of pages)."""

    def __init__(
        self,
        *,
        page_param: str = "page",
        first_page: int = 1,
        total_path: str | None = None,
        total_is_pages: bool = False,
        max_pages: int = MAX_PAGES,
    ) -> None:
        super().__init__(max_pages=max_pages)
        self.page_param, self.first_page, self.page = page_param, first_page, first_page
        self.total_path, self.total_is_pages = total_path, total_is_pages

    def init_request(self, request: PageRequest) -> None:
        """Ask for the first page."""
        request.params = {**(request.params or {}), self.page_param: self.first_page}

    def update_state(self, page: Page) -> None:
        """An empty page ends the window."""
        self.has_next_page = bool(page.records)
        self.page += 1

    def update_request(self, request: PageRequest) -> None:
        """Ask for the next page number."""
        request.params = {**(request.params or {}), self.page_param: self.page}

    def total_pages(self, first: Page) -> int | None:
        """From the total at ``total_path``: pages, or records over the first page's size."""
        total = path_get(first.body, self.total_path) if self.total_path else None
        if not isinstance(total, int | float) or not first.records:
            return None
        return int(total) if self.total_is_pages else math.ceil(total / len(first.records))

    def request_for_page(self, request: PageRequest, index: int) -> PageRequest:
        """Page ``first_page + index``."""
        return _with(request, **{self.page_param: self.first_page + index})


class OffsetPaginator(Paginator):
    """``?offset=0&limit=100``, ``?offset=100&limit=100``, ... until a short page."""

    def __init__(
        self,
        *,
        offset_param: str = "offset",
        limit_param: str = "limit",
        limit: int = 100,
        total_path: str | None = None,
        max_pages: int = MAX_PAGES,
    ) -> None:
        super().__init__(max_pages=max_pages)
        self.offset_param, self.limit_param, self.limit = offset_param, limit_param, limit
        self.total_path, self.offset = total_path, 0

    def init_request(self, request: PageRequest) -> None:
        """Ask for the first ``limit`` records."""
        request.params = {**(request.params or {}), **self._at(0)}

    def update_state(self, page: Page) -> None:
        """A page shorter than ``limit`` is the last."""
        self.has_next_page = len(page.records) >= self.limit
        self.offset += self.limit

    def update_request(self, request: PageRequest) -> None:
        """Ask for the next ``limit`` records."""
        request.params = {**(request.params or {}), **self._at(self.offset)}

    def total_pages(self, first: Page) -> int | None:
        """The total records at ``total_path`` over ``limit``."""
        total = path_get(first.body, self.total_path) if self.total_path else None
        if not isinstance(total, int | float) or not first.records:
            return None
        return math.ceil(total / self.limit)

    def request_for_page(self, request: PageRequest, index: int) -> PageRequest:
        """The records from ``index x limit``."""
        return _with(request, **self._at(index * self.limit))

    def _at(self, offset: int) -> dict[str, int]:
        return {self.offset_param: offset, self.limit_param: self.limit}


class CursorPaginator(Paginator):
    """Each page names the next one's cursor in its body; an empty cursor or page ends it."""

    def __init__(
        self,
        *,
        cursor_path: str = "next_cursor",
        cursor_param: str = "cursor",
        max_pages: int = MAX_PAGES,
    ) -> None:
        super().__init__(max_pages=max_pages)
        self.cursor_path, self.cursor_param = cursor_path, cursor_param
        self.cursor: Any = None

    def update_state(self, page: Page) -> None:
        """The cursor at ``cursor_path``."""
        self.cursor = path_get(page.body, self.cursor_path)
        self.has_next_page = self.cursor not in (None, "") and bool(page.records)

    def update_request(self, request: PageRequest) -> None:
        """Send the cursor."""
        request.params = {**(request.params or {}), self.cursor_param: self.cursor}


class NextUrlPaginator(Paginator):
    """Each page gives the next page's full URL in its body."""

    def __init__(self, *, next_url_path: str = "next", max_pages: int = MAX_PAGES) -> None:
        super().__init__(max_pages=max_pages)
        self.next_url_path = next_url_path
        self.next_url = ""  # none yet

    def update_state(self, page: Page) -> None:
        """The URL at ``next_url_path``."""
        found = path_get(page.body, self.next_url_path)
        self.next_url = found if isinstance(found, str) else ""
        self.has_next_page = bool(self.next_url)

    def update_request(self, request: PageRequest) -> None:
        """Follow the URL (it carries its own query)."""
        request.url, request.params = self.next_url, None


class LinkHeaderPaginator(NextUrlPaginator):
    """The next page's URL comes in the ``Link: <...>; rel="next"`` header."""

    def update_state(self, page: Page) -> None:
        """The URL of the ``next`` link."""
        self.next_url = page.links.get("next", {}).get("url") or ""
        self.has_next_page = bool(self.next_url)


class _Style(Strict):
    max_pages: int = Field(default=MAX_PAGES, ge=1, description="A safety stop per window.")


class NoPagination(_Style):
    """The window is one request."""

    type: Literal["none"] = Field(default="none", description="'none'.")

    def build(self) -> Paginator:
        """A walker of this style, for one window."""
        return SinglePage(max_pages=self.max_pages)


class PageNumber(_Style):
    """Numbered pages."""

    type: Literal["page_number"] = Field(description="'page_number'.")
    page_param: str = Field(default="page", description="The page parameter.")
    first_page: int = Field(default=1, description="The first page's number.")
    total_path: str | None = Field(
        default=None,
        description="Path to the total (records, or pages with total_is_pages) in the body; "
        "with it, pages are fetched concurrently.",
    )
    total_is_pages: bool = Field(default=False, description="total_path counts pages.")

    def build(self) -> Paginator:
        """A walker of this style, for one window."""
        return PageNumberPaginator(**self.model_dump(exclude={"type"}))


class Offset(_Style):
    """Pages by offset and limit."""

    type: Literal["offset"] = Field(description="'offset'.")
    offset_param: str = Field(default="offset", description="The offset parameter.")
    limit_param: str = Field(default="limit", description="The page-size parameter.")
    limit: int = Field(default=100, ge=1, description="Records per page.")
    total_path: str | None = Field(
        default=None,
        description="Path to the total records in the body; with it, pages are fetched "
        "concurrently.",
    )

    def build(self) -> Paginator:
        """A walker of this style, for one window."""
        return OffsetPaginator(**self.model_dump(exclude={"type"}))


class Cursor(_Style):
    """A cursor from each page's body."""

    type: Literal["cursor"] = Field(description="'cursor'.")
    cursor_path: str = Field(default="next_cursor", description="Path to the next cursor.")
    cursor_param: str = Field(default="cursor", description="The parameter it goes in.")

    def build(self) -> Paginator:
        """A walker of this style, for one window."""
        return CursorPaginator(**self.model_dump(exclude={"type"}))


class NextUrl(_Style):
    """The next page's URL from each page's body."""

    type: Literal["next_url"] = Field(description="'next_url'.")
    next_url_path: str = Field(default="next", description="Path to the next URL.")

    def build(self) -> Paginator:
        """A walker of this style, for one window."""
        return NextUrlPaginator(**self.model_dump(exclude={"type"}))


class LinkHeader(_Style):
    """The next page's URL from the Link header."""

    type: Literal["link_header"] = Field(description="'link_header'.")

    def build(self) -> Paginator:
        """A walker of this style, for one window."""
        return LinkHeaderPaginator(max_pages=self.max_pages)


class CustomPagination(_Style):
    """A Paginator subclass of the project's, named by reference."""

    type: Literal["custom"] = Field(description="'custom'.")
    ref: str = Field(description="'package.module:Class', a subclass of Paginator.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of its constructor."
    )

    @field_validator("ref")
    @classmethod
    def _ref(cls, value: str) -> str:
        found = import_reference(value, "Class")
        if not (isinstance(found, type) and issubclass(found, Paginator)):
            raise ValueError(
                f"{value!r} is not a subclass of ingest_assets.sources.rest.paginators.Paginator"
            )
        return value

    def build(self) -> Paginator:
        """An instance of the named class, with ``options`` and ``max_pages``."""
        paginator = import_reference(self.ref, "Class")(**self.options)
        paginator.max_pages = self.max_pages
        return paginator


#: How a REST source's pages are walked; ``type`` picks the style and defaults to ``none``.
Pagination = Annotated[
    Annotated[NoPagination, Tag("none")]
    | Annotated[PageNumber, Tag("page_number")]
    | Annotated[Offset, Tag("offset")]
    | Annotated[Cursor, Tag("cursor")]
    | Annotated[NextUrl, Tag("next_url")]
    | Annotated[LinkHeader, Tag("link_header")]
    | Annotated[CustomPagination, Tag("custom")],
    Discriminator(discriminator("type", "none")),
]
