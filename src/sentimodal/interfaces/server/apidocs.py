"""The API's documentation pages, /docs (Swagger UI) and /redoc (ReDoc), served offline.

FastAPI's own pages load their scripts and styles from a CDN, so they are blank on a machine
without internet. These pages are FastAPI's, pointed at the Swagger UI and ReDoc files that the
``fastapi-offline`` package ships (a dependency of the ``[server]`` extra), served from
``/docs/assets/``: nothing a page loads leaves the server, and each page's Content-Security-Policy
allows only this server's scripts plus the page's own inline script by hash.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs/assets"
#: Swagger UI's settings beside FastAPI's defaults: no validator badge (an image from
#: swagger.io that would leave the machine)
_SWAGGER_PARAMETERS = {"validatorUrl": None}


def add_api_docs(app: FastAPI) -> dict[str, bytes]:
    """Serve the two pages and their assets on ``app`` (made with ``docs_url=None,
    redoc_url=None``); returns the Content-Security-Policy of each page, by path."""
    assets = files("fastapi_offline").joinpath("static")
    app.mount(ASSETS_URL, StaticFiles(directory=str(assets)), name="api-docs-assets")
    assert app.openapi_url is not None
    swagger = get_swagger_ui_html(
        openapi_url=app.openapi_url,
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        oauth2_redirect_url=None,
        swagger_ui_parameters=_SWAGGER_PARAMETERS,
    ).body
    redoc = get_redoc_html(
        openapi_url=app.openapi_url,
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    ).body

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(swagger)

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc_page() -> HTMLResponse:
        return HTMLResponse(redoc)

    return {DOCS_URL: docs_csp(swagger.decode()), REDOC_URL: docs_csp(redoc.decode())}


def docs_csp(html: str) -> bytes:
    """A documentation page's policy: scripts from this server and the page's inline script
    (by hash), styles from this server and inline (Swagger UI and ReDoc write style elements
    at run time), images from this server or data: URLs, fetches to this server only (the
    OpenAPI document, "try it out"), ReDoc's search worker from a blob."""
    scripts = " ".join(["'self'", *inline_hashes(html, "script")])
    return (
        f"default-src 'none'; script-src {scripts}; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
        "connect-src 'self'; worker-src blob:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ).encode()


def inline_hashes(html: str, tag: str) -> list[str]:
    """CSP sources allowing the inline ``<tag>`` blocks of ``html`` (those without
    attributes) by their SHA-256, and nothing else."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.S)
    digests = (base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() for b in blocks)
    return [f"'sha256-{d}'" for d in digests]
