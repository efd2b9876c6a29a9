"""What each request leaves behind: one log line and the Prometheus metrics."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from cartsvc.cart import ACTIONS
from cartsvc.errors import Rejection, StorageUnavailable

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LOG_FIELDS = web.RequestKey("log_fields", dict[str, Any])
# From 1 ms to the sender's 5 s timeout, finest where answers should fall.
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    """The service's metrics, on a registry of its own (one per application)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cartsvc_requests",
            "Requests answered, by route, cart action, outcome and reason.",
            ["route", "action", "outcome", "reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cartsvc_request_duration_seconds",
            "Time from request to answer, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.redis_errors = Counter(
            "cartsvc_redis_errors",
            "Redis calls that failed, by kind (timeout or error).",
            ["kind"],
            registry=self.registry,
        )
        self.dedup_hits = Counter(
            "cartsvc_dedup_hits",
            "Deliveries recognised as repeats and answered with their first answer.",
            registry=self.registry,
        )


# Reasons for the refusals aiohttp makes itself, before any handler runs.
HTTP_REASONS = {404: "not_found", 405: "method_not_allowed"}


def hashed(session_id: str) -> str:
    """A session id as logs show it: a short digest, never the id itself."""
    return hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()[:12]


def note(request: web.Request, **fields: Any) -> None:
    """Add fields to the request's log line."""
    request.setdefault(LOG_FIELDS, {}).update(fields)


def json_answer(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json"
    )


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def build_middleware(metrics: Metrics) -> Any:
    """Map cartsvc's errors to answers, then log and count every request."""

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except Rejection as rejection:
            note(request, outcome="rejected", reason=rejection.reason)
            response = json_answer(rejection.status, rejection.body())
        except StorageUnavailable as error:
            metrics.redis_errors.labels("timeout" if error.timed_out else "error").inc()
            log.warning("redis unavailable: %s", error)
            note(request, outcome="unavailable", reason="temporarily_unavailable")
            response = json_answer(
                503, {"ok": False, "reason": "temporarily_unavailable"}
            )
        except web.HTTPException as error:
            if error.status < 400:
                _record(request, error, time.perf_counter() - started, metrics)
                raise

            # aiohttp's own refusals (404, 405) answer in the webhooks' JSON too,
            # so a sender pointed at a wrong path reads why.
            reason = HTTP_REASONS.get(error.status, "bad_request")
            note(request, outcome="rejected", reason=reason)
            response = json_answer(error.status, {"ok": False, "reason": reason})
            if "Allow" in error.headers:
                response.headers["Allow"] = error.headers["Allow"]
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            note(request, outcome="error", reason="internal_error")
            response = json_answer(500, {"ok": False, "reason": "internal_error"})

        _record(request, response, time.perf_counter() - started, metrics)
        return response

    return observe


def _record(
    request: web.Request, response: web.StreamResponse, took_s: float, metrics: Metrics
) -> None:
    fields = request.get(LOG_FIELDS, {})
    route = _route_name(request)
    outcome = fields.get("outcome", "ok" if response.status < 400 else "rejected")
    reason = fields.get("reason", "")
    # The action label takes the four actions only: a sender's own text would
    # make a new series of every value it sent.
    action = fields.get("action", "")
    action_label = action if action in ACTIONS or not action else "other"
    metrics.requests.labels(route, action_label, outcome, reason).inc()
    metrics.latency.labels(route).observe(took_s)
    log.info(
        "request",
        extra={
            "fields": {
                "method": request.method,
                "route": route,
                **fields,
                "outcome": outcome,
                "status": response.status,
                "ms": round(took_s * 1000, 2),
            }
        },
    )
