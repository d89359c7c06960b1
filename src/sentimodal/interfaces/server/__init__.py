"""The HTTP server: ``create_app`` (FastAPI), its settings, and ``serve`` (uvicorn).

Needs the ``[server]`` extra; without it, importing this package is one :class:`MissingExtra`."""

from sentimodal.extras import require_extra

require_extra("server", "the server")

from sentimodal.interfaces.server.app import create_app  # noqa: E402
from sentimodal.interfaces.server.settings import ServerSettings  # noqa: E402

__all__ = ["ServerSettings", "create_app"]
