"""Typed application keys for the objects every handler shares."""

from __future__ import annotations

from aiohttp import web

from cartsvc.http.observe import Metrics
from cartsvc.settings import Settings
from cartsvc.storage.carts import Storage

SETTINGS = web.AppKey("settings", Settings)
STORAGE = web.AppKey("storage", Storage)
METRICS = web.AppKey("metrics", Metrics)
