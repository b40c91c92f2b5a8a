"""GitHub's URLs: the public REST API, and the web (and git) base of any REST API URL."""
from __future__ import annotations

PUBLIC_API_URL = "https://api.github.com"


def gh_host(api_url: str) -> str:
    """The host `gh` is given (GH_HOST): the web URL's, without the port when it is 443
    (gh drops any port, so only 443 works for an Enterprise host)."""
    netloc = web_url_of(api_url).split("://", 1)[-1].split("/", 1)[0]
    return netloc.removesuffix(":443")


def gh_repo(api_url: str, repo: str) -> str:
    """GH_REPO: OWNER/NAME on github.com, HOST/OWNER/NAME on any other host."""
    api_url = api_url.rstrip("/")
    return repo if api_url == PUBLIC_API_URL else f"{gh_host(api_url)}/{repo}"


def web_url_of(api_url: str) -> str:
    """The web (and git) base URL of a REST API URL: https://api.github.com ->
    https://github.com; https://HOST/api/v3 -> https://HOST (GitHub Enterprise, the sandbox)."""
    api_url = api_url.rstrip("/")
    if api_url == PUBLIC_API_URL:
        return "https://github.com"
    return api_url.removesuffix("/api/v3")
