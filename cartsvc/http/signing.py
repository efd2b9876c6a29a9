"""Signing and verifying webhook deliveries, as VIZOCHOK's servers do.

The signature is HMAC-SHA256 over `{timestamp}.` and the raw body bytes, so it is
checked on the bytes as received, never on re-serialized JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping

from cartsvc.errors import Rejection

TIMESTAMP_HEADER = "X-VIZOCHOK-Timestamp"
SIGNATURE_HEADER = "X-VIZOCHOK-Signature"
_PREFIX = "sha256="


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The header value that signs `body` at `timestamp` with `secret`."""
    message = timestamp.encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return _PREFIX + digest


def signed_headers(
    secret: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    """Both signing headers for a delivery sent now."""
    timestamp = str(int(time.time() if now is None else now))
    return {
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def signing_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """Timestamp and signature of a delivery, or 401 `missing_signature`."""
    timestamp = headers.get(TIMESTAMP_HEADER, "").strip()
    given = headers.get(SIGNATURE_HEADER, "").strip()
    if not timestamp or not given:
        raise Rejection("missing_signature", status=401)

    return timestamp, given


def check_timestamp(timestamp: str, window_s: int, now: float | None = None) -> None:
    """401 unless the timestamp is whole seconds within the replay window."""
    # Unix seconds have 10 digits for centuries; a longer run is not a timestamp.
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise Rejection("invalid_signature", status=401)

    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > window_s:
        raise Rejection("timestamp_expired", status=401)


def verify(given: str, timestamp: str, body: bytes, secrets: Iterable[str]) -> None:
    """401 `invalid_signature` unless one of the secrets signed these bytes."""
    given_bytes = given.lower().encode("ascii", "replace")
    matched = False
    # Every secret is tried, so the time taken does not tell which one matched.
    for secret in secrets:
        expected = signature(secret, timestamp, body).encode("ascii")
        matched |= hmac.compare_digest(expected, given_bytes)

    if not matched:
        raise Rejection("invalid_signature", status=401)
