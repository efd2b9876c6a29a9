"""Settings: frozen, built once from a TOML file and the environment.

The environment wins over the file, so one image can run in many places. Secrets
and the Redis password never appear in a `repr` or a log line.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cartsvc.errors import ConfigError
from cartsvc.quantity import parse_decimal_text, to_milli

CATALOG_MODES = ("strict", "open")
LOG_FORMATS = ("text", "json")


def _masked(secrets: tuple[str, ...]) -> str:
    return f"<{len(secrets)} secret(s)>"


def redact_url(url: str) -> str:
    """A Redis URL fit for a log line: the password replaced by `***`.

    redis-py takes a password from the user-info part or from a `password`
    query parameter; both are hidden.
    """
    parts = urlsplit(url)
    if parts.password is not None:
        user = parts.username or ""
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        parts = parts._replace(netloc=f"{user}:***@{host}{port}")

    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name.lower() == "password" for name, _ in query):
        hidden = [(n, "***" if n.lower() == "password" else v) for n, v in query]
        parts = parts._replace(query=urlencode(hidden, safe="*"))

    return urlunsplit(parts)


@dataclass(frozen=True)
class StoreSettings:
    """What one store may differ in: its own secrets and its catalog mode."""

    secrets: tuple[str, ...] = field(default=(), repr=False)
    catalog_mode: str = "strict"

    def __repr__(self) -> str:
        return (
            f"StoreSettings(secrets={_masked(self.secrets)}, "
            f"catalog_mode={self.catalog_mode!r})"
        )


@dataclass(frozen=True)
class Limits:
    body_max_bytes: int = 64 * 1024
    # A body still incomplete after this is answered 408: with the Redis timeout
    # (1 s) it keeps every answer inside the sender's 5 s.
    body_timeout_ms: int = 3000
    cart_max_lines: int = 100
    line_max_quantity: Decimal = Decimal(999)
    cart_ttl_s: int = 30 * 24 * 3600
    dedup_ttl_s: int = 600
    replay_window_s: int = 300
    id_max_chars: int = 128
    products_max_skus: int = 100
    events_max: int = 10_000


@dataclass(frozen=True)
class RedisSettings:
    url: str = ""
    cluster: bool = False
    key_prefix: str = "cartsvc"
    timeout_ms: int = 1000
    connect_timeout_ms: int = 500
    max_connections: int = 64

    @property
    def embedded(self) -> bool:
        return not self.url

    def __repr__(self) -> str:
        url = redact_url(self.url) if self.url else "<embedded>"
        return (
            f"RedisSettings(url={url!r}, cluster={self.cluster}, "
            f"key_prefix={self.key_prefix!r}, timeout_ms={self.timeout_ms}, "
            f"connect_timeout_ms={self.connect_timeout_ms}, "
            f"max_connections={self.max_connections})"
        )


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    log_format: str = "text"
    secrets: tuple[str, ...] = field(default=(), repr=False)
    catalog_mode: str = "strict"
    stores: Mapping[str, StoreSettings] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    redis: RedisSettings = field(default_factory=RedisSettings)

    def __repr__(self) -> str:
        return (
            f"Settings(host={self.host!r}, port={self.port}, "
            f"secrets={_masked(self.secrets)}, catalog_mode={self.catalog_mode!r}, "
            f"stores={dict(self.stores)!r}, limits={self.limits!r}, "
            f"redis={self.redis!r})"
        )

    def store(self, store_id: str) -> StoreSettings:
        """A store's own settings, or the defaults for a store not listed."""
        found = self.stores.get(store_id)
        if found is not None:
            return found if found.secrets else replace(found, secrets=self.secrets)

        return StoreSettings(secrets=self.secrets, catalog_mode=self.catalog_mode)

    def with_secrets(self, secrets: tuple[str, ...]) -> Settings:
        return replace(self, secrets=secrets)

    @property
    def has_any_secret(self) -> bool:
        return bool(self.secrets) or any(s.secrets for s in self.stores.values())


def _expect(value: Any, kind: type, name: str) -> Any:
    if kind is int and isinstance(value, bool):
        raise ConfigError(f"{name} must be a whole number, not {value!r}")

    if not isinstance(value, kind):
        raise ConfigError(f"{name} must be of type {kind.__name__}, not {value!r}")

    return value


def _positive(value: Any, name: str) -> int:
    number = _expect(value, int, name)
    if number <= 0:
        raise ConfigError(f"{name} must be above 0, not {number}")

    return int(number)


def _secret_list(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]

    items = _expect(value, list, name)
    secrets = tuple(_expect(item, str, name) for item in items)
    if any(not s for s in secrets):
        raise ConfigError(f"{name} holds an empty secret")

    return secrets


def _catalog_mode(value: Any, name: str) -> str:
    mode = _expect(value, str, name)
    if mode not in CATALOG_MODES:
        raise ConfigError(f"{name} must be one of {CATALOG_MODES}, not {mode!r}")

    return str(mode)


def _line_max(value: Any, name: str) -> Decimal:
    text = str(value) if isinstance(value, (int, float, str)) else ""
    number = parse_decimal_text(text) if not isinstance(value, bool) else None
    # Lua holds quantities as thousandths in doubles: a billion units stays exact.
    too_big = number is not None and number > Decimal(10) ** 9
    if number is None or number <= 0 or too_big or to_milli(number) is None:
        raise ConfigError(f"{name} must be a positive number, not {value!r}")

    return number


def _limits(table: Mapping[str, Any]) -> Limits:
    known = {f.name for f in fields(Limits)}
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"unknown keys in [limits]: {sorted(unknown)}")

    values: dict[str, Any] = {}
    for name, raw in table.items():
        if name == "line_max_quantity":
            values[name] = _line_max(raw, f"limits.{name}")
        elif name == "events_max":
            values[name] = _expect(raw, int, f"limits.{name}")
        else:
            values[name] = _positive(raw, f"limits.{name}")

    limits = Limits(**values)
    if limits.dedup_ttl_s <= limits.replay_window_s:
        # A signed delivery may be replayed for as long as its timestamp is
        # fresh; a dedup record that expired sooner would let it apply again.
        raise ConfigError(
            f"limits.dedup_ttl_s ({limits.dedup_ttl_s}) must be longer than "
            f"limits.replay_window_s ({limits.replay_window_s})"
        )

    return limits


def _redis(table: Mapping[str, Any]) -> RedisSettings:
    known = {f.name for f in fields(RedisSettings)}
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"unknown keys in [redis]: {sorted(unknown)}")

    values: dict[str, Any] = {}
    for name, raw in table.items():
        if name in ("url", "key_prefix"):
            values[name] = _expect(raw, str, f"redis.{name}")
        elif name == "cluster":
            values[name] = _expect(raw, bool, f"redis.{name}")
        else:
            values[name] = _positive(raw, f"redis.{name}")

    return RedisSettings(**values)


def _stores(table: Mapping[str, Any]) -> dict[str, StoreSettings]:
    stores = {}
    for store_id, raw in table.items():
        entry = _expect(raw, dict, f"stores.{store_id}")
        unknown = set(entry) - {"secrets", "secret", "catalog_mode"}
        if unknown:
            raise ConfigError(f"unknown keys in [stores.{store_id}]: {sorted(unknown)}")

        secrets = entry.get("secrets", entry.get("secret", []))
        stores[store_id] = StoreSettings(
            secrets=_secret_list(secrets, f"stores.{store_id}.secrets"),
            catalog_mode=_catalog_mode(
                entry.get("catalog_mode", "strict"), f"stores.{store_id}.catalog_mode"
            ),
        )

    return stores


def from_mapping(data: Mapping[str, Any]) -> Settings:
    """Settings from a parsed TOML document, every value checked."""
    unknown = set(data) - {"server", "webhook", "limits", "redis", "stores"}
    if unknown:
        raise ConfigError(f"unknown sections: {sorted(unknown)}")

    server = _expect(data.get("server", {}), dict, "server")
    webhook = _expect(data.get("webhook", {}), dict, "webhook")
    log_format = _expect(server.get("log_format", "text"), str, "server.log_format")
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"server.log_format must be one of {LOG_FORMATS}")

    return Settings(
        host=_expect(server.get("host", "127.0.0.1"), str, "server.host"),
        port=_positive(server.get("port", 8080), "server.port"),
        log_format=log_format,
        secrets=_secret_list(webhook.get("secrets", []), "webhook.secrets"),
        catalog_mode=_catalog_mode(
            webhook.get("catalog_mode", "strict"), "webhook.catalog_mode"
        ),
        stores=_stores(_expect(data.get("stores", {}), dict, "stores")),
        limits=_limits(_expect(data.get("limits", {}), dict, "limits")),
        redis=_redis(_expect(data.get("redis", {}), dict, "redis")),
    )


def _env_bool(raw: str, name: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True

    if lowered in ("0", "false", "no", "off", ""):
        return False

    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def _env_int(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None


# Environment variables that override one TOML key each: (section, key, parser).
_ENV_KEYS: dict[str, tuple[str, str, str]] = {
    "CARTSVC_REDIS_URL": ("redis", "url", "str"),
    "CARTSVC_REDIS_CLUSTER": ("redis", "cluster", "bool"),
    "CARTSVC_REDIS_TIMEOUT_MS": ("redis", "timeout_ms", "int"),
    "CARTSVC_REDIS_MAX_CONNECTIONS": ("redis", "max_connections", "int"),
    "CARTSVC_KEY_PREFIX": ("redis", "key_prefix", "str"),
    "CARTSVC_CATALOG_MODE": ("webhook", "catalog_mode", "str"),
    "CARTSVC_LOG_FORMAT": ("server", "log_format", "str"),
    "CARTSVC_BODY_MAX_BYTES": ("limits", "body_max_bytes", "int"),
    "CARTSVC_BODY_TIMEOUT_MS": ("limits", "body_timeout_ms", "int"),
    "CARTSVC_CART_MAX_LINES": ("limits", "cart_max_lines", "int"),
    "CARTSVC_LINE_MAX_QUANTITY": ("limits", "line_max_quantity", "str"),
    "CARTSVC_CART_TTL_S": ("limits", "cart_ttl_s", "int"),
    "CARTSVC_DEDUP_TTL_S": ("limits", "dedup_ttl_s", "int"),
    "CARTSVC_REPLAY_WINDOW_S": ("limits", "replay_window_s", "int"),
}


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, (section, key, kind) in _ENV_KEYS.items():
        raw = env.get(name)
        if raw is None:
            continue

        value: Any = raw
        if kind == "bool":
            value = _env_bool(raw, name)
        elif kind == "int":
            value = _env_int(raw, name)

        data.setdefault(section, {})[key] = value

    secret = env.get("CARTSVC_WEBHOOK_SECRET")
    if secret:
        # Comma-separated, so a rotation can list the new secret beside the old.
        parts = [part.strip() for part in secret.split(",") if part.strip()]
        data.setdefault("webhook", {})["secrets"] = parts


def load(env: Mapping[str, str] | None = None, path: str | None = None) -> Settings:
    """Settings from the TOML file named by CARTSVC_CONFIG, then the environment."""
    env = os.environ if env is None else env
    path = path or env.get("CARTSVC_CONFIG") or None
    data: dict[str, Any] = {}
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as error:
            raise ConfigError(f"cannot read config file {path}: {error}") from error
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(
                f"config file {path} is not valid TOML: {error}"
            ) from error

    _apply_env(data, env)
    return from_mapping(data)
