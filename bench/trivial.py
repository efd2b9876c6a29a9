"""A trivial HTTP server, to show the load generator's own ceiling.

It answers every request with the same canned bytes, parsing only what it must to
find where a request ends, so what limits requests/s against it is wrk (and the
loopback), not the server. Run: `python -m bench.trivial --port P`.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import cast

ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b'Content-Length: 11\r\n\r\n{"ok":true}'
)
_LENGTH = b"\r\ncontent-length:"


class Canned(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; same interface.
        self.transport = cast(asyncio.Transport, transport)
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        answers = 0
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                break

            head = self.buffer[:end].lower()
            at = head.find(_LENGTH)
            length = 0
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + len(_LENGTH) : stop if stop > 0 else None])

            if len(self.buffer) < end + 4 + length:
                break

            self.buffer = self.buffer[end + 4 + length :]
            answers += 1

        if answers:
            self.transport.write(ANSWER * answers)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Canned, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.trivial")
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    try:
        import uvloop

        uvloop.run(serve(port))
    except ImportError:
        asyncio.run(serve(port))


if __name__ == "__main__":
    main()
