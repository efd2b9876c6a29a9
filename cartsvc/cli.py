"""The `cartsvc` command: serve, catalog load, cart show, send."""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets as secrets_module
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from cartsvc import __version__, catalog, logs
from cartsvc import settings as settings_module
from cartsvc.errors import CartsvcError, ConfigError
from cartsvc.settings import Settings, redact_url

log = logging.getLogger(__name__)


def _catalog_option(text: str) -> tuple[str, Path]:
    store_id, sep, path = text.partition("=")
    if not sep or not store_id or not path:
        raise argparse.ArgumentTypeError(f"expected STORE=FILE, not {text!r}")

    return store_id, Path(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cartsvc", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("--config", help="TOML settings file (else $CARTSVC_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the webhook service")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.add_argument("--log-format", choices=settings_module.LOG_FORMATS)
    serve.add_argument(
        "--catalog",
        action="append",
        type=_catalog_option,
        default=[],
        metavar="STORE=FILE",
        help="load a catalog file for a store at start (repeatable)",
    )
    serve.add_argument(
        "--workers", type=int, default=1, help="processes sharing the port (default 1)"
    )

    catalog_cmd = commands.add_parser("catalog", help="manage a store's catalog")
    catalog_actions = catalog_cmd.add_subparsers(dest="catalog_command", required=True)
    load = catalog_actions.add_parser("load", help="load products from CSV or JSON")
    load.add_argument("--store", required=True, help="store id")
    load.add_argument("file", type=Path, help="a .csv file, or a .json list")

    cart_cmd = commands.add_parser("cart", help="read carts")
    cart_actions = cart_cmd.add_subparsers(dest="cart_command", required=True)
    show = cart_actions.add_parser("show", help="print one cart")
    show.add_argument("--store", required=True, help="store id")
    show.add_argument("--session", required=True, help="session id")

    from cartsvc.sender import add_send_parser

    add_send_parser(commands)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return settings_module.load(path=args.config)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args)

        logs.configure("text", logging.WARNING)
        if args.command == "catalog":
            return asyncio.run(catalog_load(args))

        if args.command == "cart":
            return asyncio.run(cart_show(args))

        from cartsvc.sender import send

        return asyncio.run(send(args, _settings(args)))
    except CartsvcError as error:
        print(f"cartsvc: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        # Most often a port already taken: a sentence, not a traceback.
        print(f"cartsvc: {error}", file=sys.stderr)
        return 1


def _serve_settings(args: argparse.Namespace) -> Settings:
    settings = _settings(args)
    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    if args.log_format:
        overrides["log_format"] = args.log_format

    from dataclasses import replace

    return replace(settings, **overrides)


def _announce(settings: Settings) -> None:
    if settings.redis.embedded:
        log.warning(
            "STORAGE IS THE EMBEDDED IN-MEMORY REDIS: nothing persists across a "
            "restart and other instances cannot share it; set CARTSVC_REDIS_URL "
            "for production"
        )
    else:
        log.info(
            "storage=%s url=%s",
            "redis-cluster" if settings.redis.cluster else "redis",
            redact_url(settings.redis.url),
        )

    for store_id, store in settings.stores.items():
        log.info(
            "store configured store=%s catalog_mode=%s own_secrets=%d",
            store_id,
            store.catalog_mode,
            len(store.secrets),
        )
    log.info(
        "default catalog_mode=%s limits=%r", settings.catalog_mode, settings.limits
    )


def serve(args: argparse.Namespace) -> int:
    """Run the service until SIGINT or SIGTERM."""
    settings = _serve_settings(args)
    logs.configure(settings.log_format)
    if not settings.has_any_secret:
        if not settings.redis.embedded:
            raise ConfigError(
                "no webhook secret configured: set CARTSVC_WEBHOOK_SECRET or "
                "[webhook] secrets in the config file"
            )

        generated = secrets_module.token_urlsafe(24)
        settings = settings.with_secrets((generated,))
        # Printed once, to the terminal only: it is never logged.
        print(
            "No webhook secret configured; for this run the secret is:\n"
            f"  {generated}\n"
            f"  export CARTSVC_WEBHOOK_SECRET={generated}",
            file=sys.stderr,
            flush=True,
        )

    for _, path in args.catalog:
        catalog.parse_file(path)

    _announce(settings)
    from cartsvc.runner import run

    run(settings, args.catalog, workers=args.workers)
    return 0


async def _storage(args: argparse.Namespace) -> Any:
    from cartsvc.storage.carts import Storage
    from cartsvc.storage.connection import connect

    settings = _settings(args)
    if settings.redis.embedded:
        raise ConfigError(
            "no CARTSVC_REDIS_URL set: the embedded Redis lives inside "
            "`cartsvc serve` only; use `cartsvc serve --catalog STORE=FILE` there"
        )

    # A tool may wait: a large catalog is one script that runs for seconds, and a
    # socket timeout shorter than that would call a write that succeeded failed.
    redis = replace(settings.redis, timeout_ms=max(settings.redis.timeout_ms, 60_000))
    return Storage(connect(redis), redis.key_prefix, redis.timeout_ms)


async def catalog_load(args: argparse.Namespace) -> int:
    products = catalog.parse_file(args.file)
    storage = await _storage(args)
    try:
        written = await storage.write_products(
            args.store, [(p.sku, p.fields()) for p in products]
        )
    finally:
        await storage.close()

    print(f"loaded {written} products into store {args.store}")
    return 0


async def cart_show(args: argparse.Namespace) -> int:
    from cartsvc.cart import cart_view

    storage = await _storage(args)
    try:
        lines = await storage.read_cart(args.store, args.session)
    finally:
        await storage.close()

    view = cart_view(lines)
    view["keys"] = {
        "cart": storage.keys(args.store).cart(args.session),
        "lines": storage.keys(args.store).lines(args.session),
    }
    print(orjson.dumps(view, option=orjson.OPT_INDENT_2).decode())
    return 0
