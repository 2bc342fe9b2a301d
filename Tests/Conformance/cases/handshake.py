"""The opening handshake (RFC 6455 sections 4.2.1, 4.2.2 and 4.4), as data: section "H" of the conformance run,
each case sent to /v1/echo and /v1/socket as one raw HTTP request.

Each case:
  id, desc
  method, version    request line parts (default GET, HTTP/1.1)
  headers            changes to the default upgrade headers: a value replaces, None removes; "+Name" adds a
                     second header of that name
  status             the status (or list of statuses) the server must answer with
  has / lacks        response headers that must be there (name -> exact value, compared case-insensitively for
                     Upgrade and Connection) / must not be there
  endpoints          optional {"echo"|"socket": {"has": ..., "lacks": ...}}: expectations that differ per endpoint
"""
from __future__ import annotations

GOOD_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's example key
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # and its Sec-WebSocket-Accept

DEFAULT_HEADERS = {
    "Host": "127.0.0.1",
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": GOOD_KEY,
    "Sec-WebSocket-Version": "13",
}

CASES: list[dict] = []


def case(id: str, desc: str, status, headers: dict | None = None, method: str = "GET", version: str = "HTTP/1.1",
         has: dict | None = None, lacks: list[str] | None = None, endpoints: dict | None = None) -> None:
    CASES.append({"id": id, "desc": desc, "method": method, "version": version, "headers": headers or {},
                  "status": status if isinstance(status, list) else [status], "has": has or {}, "lacks": lacks or [],
                  "endpoints": endpoints or {}})


OK_HEADERS = {"Upgrade": "websocket", "Connection": "upgrade", "Sec-WebSocket-Accept": ACCEPT}

case("H.1", "a valid upgrade: 101 with the RFC's example accept value", 101, has=OK_HEADERS,
     lacks=["Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions"])
case("H.2", "upgrade token and header names in other cases", 101,
     headers={"Upgrade": "WebSocket", "Connection": "keep-alive, UPGRADE"}, has=OK_HEADERS)
case("H.3", "the examhub.v1.json subprotocol offered among others is selected", 101,
     headers={"Sec-WebSocket-Protocol": "chat, examhub.v1.json"}, has={"Sec-WebSocket-Protocol": "examhub.v1.json"})
case("H.4", "only unknown subprotocols offered: none selected", 101, headers={"Sec-WebSocket-Protocol": "chat, superchat"},
     lacks=["Sec-WebSocket-Protocol"])
case("H.5", "permessage-deflate offered: negotiated on /v1/socket (RFC 7692, the hub's defaults), not on /v1/echo", 101,
     headers={"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"},
     endpoints={"echo": {"lacks": ["Sec-WebSocket-Extensions"]},
                "socket": {"has": {"Sec-WebSocket-Extensions": "permessage-deflate; server_no_context_takeover; "
                                                               "server_max_window_bits=12; client_max_window_bits=12"}}})
case("H.6", "version 8: 426 naming version 13", 426, headers={"Sec-WebSocket-Version": "8"},
     has={"Sec-WebSocket-Version": "13"})
case("H.7", "version 14: 426 naming version 13", 426, headers={"Sec-WebSocket-Version": "14"},
     has={"Sec-WebSocket-Version": "13"})
case("H.8", "no Sec-WebSocket-Version", 400, headers={"Sec-WebSocket-Version": None})
case("H.9", "no Sec-WebSocket-Key", 400, headers={"Sec-WebSocket-Key": None})
case("H.10", "Sec-WebSocket-Key that is not base64 of 16 bytes (5 characters)", 400, headers={"Sec-WebSocket-Key": "short"})
case("H.11", "Sec-WebSocket-Key of 20 bytes", 400, headers={"Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="})
case("H.12", "Sec-WebSocket-Key with characters outside base64", 400,
     headers={"Sec-WebSocket-Key": "dGhlIHNhbXBsZ$Bub25jZQ=="})
case("H.13", "two Sec-WebSocket-Key headers", 400, headers={"+Sec-WebSocket-Key": GOOD_KEY})
case("H.14", "no Upgrade header", 400, headers={"Upgrade": None})
case("H.15", "Upgrade to something else", 400, headers={"Upgrade": "h2c"})
case("H.16", "POST with upgrade headers: no upgrade", [400, 405], method="POST",
     headers={"Content-Length": "0"}, lacks=["Sec-WebSocket-Accept"])
case("H.17", "HTTP/1.0 request with upgrade headers: no upgrade", 400, version="HTTP/1.0", lacks=["Sec-WebSocket-Accept"])
