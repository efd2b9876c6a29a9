"""The one root of cartsvc's own errors, and the kinds that carry data."""

from __future__ import annotations

from typing import Any


class CartsvcError(Exception):
    """Anything cartsvc raises on purpose."""


class ConfigError(CartsvcError):
    """A setting is missing, malformed or out of range."""


class StorageUnavailable(CartsvcError):
    """Redis could not be reached, or did not answer in time."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class CatalogError(CartsvcError):
    """A catalog file holds a bad row; nothing of it was loaded."""

    def __init__(self, message: str, where: str = "") -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class Rejection(CartsvcError):
    """A request answered with `ok: false` and a reason the assistant reads."""

    def __init__(self, reason: str, status: int = 200, **extra: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"ok": False, "reason": self.reason, **self.extra}
