"""The HTTP server: ``create_app`` (FastAPI), its settings, and ``serve`` (uvicorn)."""

from sentimodal.interfaces.server.app import create_app
from sentimodal.interfaces.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
