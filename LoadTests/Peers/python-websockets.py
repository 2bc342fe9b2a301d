"""Peer: Python `websockets` (PyPI, asyncio API). Usage: python3 python-websockets.py PORT

/v1/echo sends every message back; /v1/broadcast sends every text message to every other open broadcast socket
with `websockets.broadcast` (encoded once); other paths get 404. The contract is in README.md.
"""
import asyncio
import http
import signal
import sys

import websockets
from websockets.asyncio.server import ServerConnection, serve

broadcast_sockets: set[ServerConnection] = set()


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def broadcast(ws: ServerConnection) -> None:
    broadcast_sockets.add(ws)
    try:
        async for message in ws:
            if isinstance(message, str):
                websockets.broadcast([s for s in broadcast_sockets if s is not ws], message)
    finally:
        broadcast_sockets.discard(ws)


async def handler(ws: ServerConnection) -> None:
    if ws.request.path == "/v1/echo":
        await echo(ws)
    elif ws.request.path == "/v1/broadcast":
        await broadcast(ws)


def route(ws: ServerConnection, request):
    """Refuses the upgrade with 404 on any path but the two."""
    if request.path not in ("/v1/echo", "/v1/broadcast"):
        return ws.respond(http.HTTPStatus.NOT_FOUND, "not found\n")
    return None


async def main(port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with serve(
        handler, "127.0.0.1", port, process_request=route, compression=None, max_size=2**20, ping_interval=None
    ):
        print(f"python-websockets listening on 127.0.0.1:{port}", flush=True)
        await stop


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit("usage: python3 python-websockets.py PORT")
    asyncio.run(main(int(sys.argv[1])))
