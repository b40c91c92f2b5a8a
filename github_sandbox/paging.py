"""Pagination as GitHub does it: `page`/`per_page` (max 100) and a `Link` header. Pure."""
from __future__ import annotations

from math import ceil
from typing import Sequence, TypeVar
from urllib.parse import urlencode

T = TypeVar("T")
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def page_params(query: dict[str, str]) -> tuple[int, int]:
    """(page, per_page) from the query; bad values fall back like GitHub's do."""
    page = max(1, _int(query.get("page"), 1))
    per_page = _int(query.get("per_page"), DEFAULT_PER_PAGE)
    if per_page < 1:
        per_page = DEFAULT_PER_PAGE
    return page, min(per_page, MAX_PER_PAGE)


def page_slice(items: Sequence[T], page: int, per_page: int) -> list[T]:
    start = (page - 1) * per_page
    return list(items[start:start + per_page])


def link_header(url: str, query: list[tuple[str, str]], page: int, per_page: int,
                total: int) -> str | None:
    """`<...page=2>; rel="next", <...>; rel="last"` and friends; None for one page."""
    last = max(1, ceil(total / per_page))
    if last == 1 and page == 1:
        return None

    def href(n: int) -> str:
        params = [(k, v) for k, v in query if k != "page"] + [("page", str(n))]
        return f"<{url}?{urlencode(params)}>"

    links = []
    if page > 1:
        links.append(f'{href(min(page - 1, last))}; rel="prev"')
    if page < last:
        links.append(f'{href(page + 1)}; rel="next"')
        links.append(f'{href(last)}; rel="last"')
    if page > 1:
        links.append(f'{href(1)}; rel="first"')
    return ", ".join(links) or None
