"""Settings from TOML and environment: strict values, masked secrets."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from cartsvc.errors import ConfigError
from cartsvc.settings import load, redact_url

EXAMPLE = Path(__file__).parent.parent / "config" / "cartsvc.example.toml"


def test_example_file_loads_with_documented_defaults() -> None:
    settings = load(env={}, path=str(EXAMPLE))

    assert settings.limits.dedup_ttl_s == 600
    assert settings.limits.line_max_quantity == Decimal(999)
    assert settings.redis.embedded
    assert settings.catalog_mode == "strict"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[redis]\nurl = "redis://file:1/0"\n[limits]\ndedup_ttl_s = 900\n'
    )
    env = {
        "CARTSVC_CONFIG": str(config),
        "CARTSVC_REDIS_URL": "redis://:hunter2@env:6380/1",
        "CARTSVC_WEBHOOK_SECRET": "new, old",
        "CARTSVC_REDIS_CLUSTER": "true",
    }

    settings = load(env=env)

    assert settings.redis.url == "redis://:hunter2@env:6380/1"
    assert settings.redis.cluster is True
    assert settings.secrets == ("new", "old")
    assert settings.limits.dedup_ttl_s == 900


def test_repr_never_shows_a_secret_or_password() -> None:
    env = {
        "CARTSVC_REDIS_URL": "redis://user:hunter2@h:1/0",
        "CARTSVC_WEBHOOK_SECRET": "s3cr3t",
    }
    text = repr(load(env=env))

    assert "hunter2" not in text and "s3cr3t" not in text
    assert "***" in text and "<1 secret(s)>" in text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:hunter2@h:1/0", "redis://user:***@h:1/0"),
        ("redis://h:1/0?password=hunter2", "redis://h:1/0?password=***"),
        ("rediss://h:1/0?db=2&Password=hunter2", "rediss://h:1/0?db=2&Password=***"),
        ("redis://h:1/0", "redis://h:1/0"),
    ],
)
def test_a_redis_url_in_a_log_shows_no_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_store_sections_choose_secrets_and_mode(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[webhook]\nsecrets = ["default"]\n'
        '[stores."store-1"]\nsecrets = ["own"]\ncatalog_mode = "open"\n'
        '[stores."store-2"]\ncatalog_mode = "open"\n'
    )

    settings = load(env={}, path=str(config))

    assert settings.store("store-1").secrets == ("own",)
    assert settings.store("store-2").secrets == ("default",)
    assert settings.store("elsewhere").secrets == ("default",)
    assert settings.store("store-1").catalog_mode == "open"
    assert settings.store("elsewhere").catalog_mode == "strict"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("[limits]\ncart_ttl_s = 0\n", "above 0", id="zero-ttl"),
        pytest.param("[limits]\ncart_ttl_s = true\n", "whole number", id="bool-ttl"),
        pytest.param("[limits]\ncart_tll_s = 5\n", "unknown keys", id="typo"),
        pytest.param('[webhook]\ncatalog_mode = "lax"\n', "must be one of", id="mode"),
        pytest.param("[redis]\ncluster = 1\n", "type bool", id="cluster-int"),
        pytest.param("[limits]\nline_max_quantity = -1\n", "positive", id="line-max"),
        pytest.param("[nope]\n", "unknown sections", id="section"),
        pytest.param("not toml [", "not valid TOML", id="syntax"),
        pytest.param(
            "[limits]\ndedup_ttl_s = 10\n",
            r"dedup_ttl_s \(10\) must be longer than limits.replay_window_s \(300\)",
            id="dedup-shorter-than-replay",
        ),
    ],
)
def test_bad_values_are_refused_clearly(
    tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(text)

    with pytest.raises(ConfigError, match=message):
        load(env={}, path=str(config))


def test_bad_environment_value_is_named() -> None:
    with pytest.raises(ConfigError, match="CARTSVC_REDIS_TIMEOUT_MS"):
        load(env={"CARTSVC_REDIS_TIMEOUT_MS": "fast"})
