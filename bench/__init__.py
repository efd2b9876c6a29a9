"""The side-by-side benchmark: cartsvc against a floor handler, one table.

`make bench` (or `.venv/bin/python -m bench`) starts its own redis-server, the
service and the floor handler, drives both with wrk from pre-signed request pools,
and prints requests/s, latency, Redis commands per request and peak memory.
"""
