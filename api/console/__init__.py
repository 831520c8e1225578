"""``/console``: the operator's live page (one HTML page, vanilla JS and CSS, no build step).

The page and its two assets are public: they hold no data. The script asks for the API token
once, keeps it in the browser's sessionStorage (never in a URL) and sends it as a bearer token
on every call to the JSON API, which is where the data is.
"""

from __future__ import annotations

from importlib.resources import files

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ROOT = "/console"
_ASSETS = {
    ROOT: ("index.html", "text/html; charset=utf-8"),
    f"{ROOT}/console.js": ("console.js", "text/javascript; charset=utf-8"),
    f"{ROOT}/console.css": ("console.css", "text/css; charset=utf-8"),
}
PATHS = frozenset(_ASSETS)

# Only our own script and style; data from this origin only; no frames, no form posts.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _asset(path: str, name: str, media_type: str) -> Route:
    body = files(__name__).joinpath(name).read_bytes()

    async def endpoint(request: Request) -> Response:
        return Response(body, media_type=media_type, headers=HEADERS)

    endpoint.__name__ = f"console_{name.replace('.', '_')}"
    return Route(path, endpoint, methods=["GET"])


def routes() -> list[Route]:
    """The page and its assets, read once (HEAD too, as Starlette gives every GET)."""
    return [_asset(path, name, media) for path, (name, media) in _ASSETS.items()]
