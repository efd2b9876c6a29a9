"""The registry of Lua scripts: read once from package data, run by their SHA."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

SCRIPT_NAMES = ("cart_change", "cart_read", "products_read", "catalog_load")


def script_source(name: str) -> str:
    return (
        resources.files("cartsvc.storage")
        .joinpath(f"lua/{name}.lua")
        .read_text(encoding="utf-8")
    )


@dataclass(frozen=True)
class Scripts:
    """Every script registered on one client.

    redis-py's Script runs EVALSHA and, on NOSCRIPT (a restarted or flushed Redis),
    loads the source and runs it again, so callers never see the cache missing.
    """

    cart_change: Any
    cart_read: Any
    products_read: Any
    catalog_load: Any

    @classmethod
    def register(cls, client: Any) -> Scripts:
        return cls(
            **{
                name: client.register_script(script_source(name))
                for name in SCRIPT_NAMES
            }
        )

    def all(self) -> tuple[Any, ...]:
        return (self.cart_change, self.cart_read, self.products_read, self.catalog_load)
