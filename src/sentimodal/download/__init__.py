"""Bulk image download for datasets whose images are URLs (``sentimodal download``)."""

from sentimodal.download.config import DownloadConfig
from sentimodal.download.run import DownloadResult, download

__all__ = ["DownloadConfig", "DownloadResult", "download"]
