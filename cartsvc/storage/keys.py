"""Every Redis key cartsvc writes, and how outside ids are escaped into them.

All keys of one store share the hash tag `{store}`, so that one script may touch a
cart, its products and its delivery record on one Redis Cluster slot. Ids come from
outside: anything but ASCII letters, digits and `-._~` is percent-encoded byte by
byte (UTF-8), `%` included, so no two ids share a key and no id can close the hash
tag or forge a `:` separator. `cart_read.lua` repeats this rule for product keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNSAFE = re.compile(rb"[^A-Za-z0-9._~-]")


def escape_id(raw: str) -> str:
    """The key-safe form of an id: ordinary ids stay as they are."""
    encoded = raw.encode("utf-8")
    return _UNSAFE.sub(lambda m: b"%%%02X" % m.group()[0], encoded).decode("ascii")


@dataclass(frozen=True, slots=True)
class StoreKeys:
    """Key names of one store under a prefix, e.g. `cartsvc:{store-1}:cart:user-123`."""

    prefix: str
    store_id: str

    @property
    def base(self) -> str:
        return f"{self.prefix}:{{{escape_id(self.store_id)}}}"

    def cart(self, session_id: str) -> str:
        return f"{self.base}:cart:{escape_id(session_id)}"

    def lines(self, session_id: str) -> str:
        return f"{self.base}:lines:{escape_id(session_id)}"

    def product(self, sku: str) -> str:
        return f"{self.base}:product:{escape_id(sku)}"

    def product_prefix(self) -> str:
        return f"{self.base}:product:"

    def delivery(self, delivery_id: str) -> str:
        return f"{self.base}:delivery:{delivery_id}"

    def events(self) -> str:
        return f"{self.base}:events"
