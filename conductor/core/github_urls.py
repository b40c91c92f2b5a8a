"""GitHub's URLs: the public REST API, and the web (and git) base of any REST API URL."""
from __future__ import annotations

PUBLIC_API_URL = "https://api.github.com"


def web_url_of(api_url: str) -> str:
    """The web (and git) base URL of a REST API URL: https://api.github.com ->
    https://github.com; https://HOST/api/v3 -> https://HOST (GitHub Enterprise, the sandbox)."""
    api_url = api_url.rstrip("/")
    if api_url == PUBLIC_API_URL:
        return "https://github.com"
    return api_url.removesuffix("/api/v3")
