"""Peer: socketify (PyPI; uWebSockets underneath, needs Debian's libuv1). Usage: python3 socketify-peer.py PORT

/v1/echo sends every message back; /v1/broadcast sends every text message to every other open broadcast socket
through uWS's topic publish (encoded once); other paths get 404. The contract is in README.md.

socketify 0.0.31's `WebSocket.publish` calls `App.publish`, which sends to every subscriber INCLUDING the sender.
uWS's own `WebSocket::publish` excludes the sender, so the broadcast calls that native function directly.
"""
import signal
import sys

from socketify import App, AppListenOptions, CompressOptions, OpCode
from socketify.native import lib

TOPIC = b"broadcast"


def broadcast_open(ws):
    ws.subscribe(TOPIC)


def broadcast_message(ws, message, opcode):
    if opcode != OpCode.TEXT:
        return
    data = message.encode("utf-8") if isinstance(message, str) else message
    # uws_ws_publish excludes `ws` itself; the frame is encoded once for all subscribers.
    lib.uws_ws_publish_with_options(
        ws.app.SSL, ws.ws, TOPIC, len(TOPIC), data, len(data), int(OpCode.TEXT), False
    )


def echo_message(ws, message, opcode):
    ws.send(message, opcode)


def not_found(res, req):
    res.write_status(404).end("not found\n")


def main(port: int) -> None:
    app = App()
    behaviour = {
        "compression": CompressOptions.DISABLED,
        "max_payload_length": 1 << 20,
        "idle_timeout": 0,
        # uWS drops a message for a socket whose send buffer is over this; the other peers buffer without bound.
        "max_backpressure": 1 << 30,
        "close_on_backpressure_limit": False,
    }
    app.ws("/v1/echo", {**behaviour, "message": echo_message})
    app.ws("/v1/broadcast", {**behaviour, "open": broadcast_open, "message": broadcast_message})
    app.any("/*", not_found)

    def listening(config):
        print(f"socketify listening on 127.0.0.1:{port}", flush=True)

    def stop(signum, frame):
        app.close()

    app.listen(AppListenOptions(port=port, host="127.0.0.1"), listening)
    signal.signal(signal.SIGTERM, stop)
    app.run()


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit("usage: python3 socketify-peer.py PORT")
    main(int(sys.argv[1]))
