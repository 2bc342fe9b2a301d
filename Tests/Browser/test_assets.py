"""The hub serves the browser client and, in dev mode only, the demo pages and the dev token route."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from browserkit import HubPool, base_url
from hubclient import b64u_decode

REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "Sources" / "ExamHubServer" / "Client"


def test_generated_assets_match_sources():
    """ClientAssets.swift (compiled into the binary) is exactly what the generator makes of Client/."""
    run = subprocess.run([sys.executable, str(CLIENT / "generate-assets.py"), "--check"], capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr


def test_client_module_is_served_with_caching_headers(hub):
    status, headers, body = hub.http("GET", "/client/examhub.js")
    assert status == 200
    assert headers["content-type"] == "text/javascript; charset=utf-8"
    assert headers["cache-control"] == "public, max-age=300"
    assert headers["access-control-allow-origin"] == "*"
    assert headers["x-content-type-options"] == "nosniff"
    assert body.decode() == (CLIENT / "examhub.js").read_text()
    etag = headers["etag"]
    assert etag.startswith('"') and len(etag) == 18

    status, headers304, body = hub.http("GET", "/client/examhub.js", headers={"If-None-Match": etag})
    assert (status, body) == (304, b"")
    assert headers304["etag"] == etag
    status, _, body = hub.http("GET", "/client/examhub.js", headers={"If-None-Match": '"other"'})
    assert status == 200 and body
    status, headers, body = hub.http("HEAD", "/client/examhub.js")
    assert (status, body) == (200, b"")
    assert int(headers["content-length"]) == len((CLIENT / "examhub.js").read_bytes())


def test_unknown_paths_and_methods(hub):
    for path in ("/client/", "/client/other.js", "/client/examhub.js.map", "/demo", "/demo/nope",
                 "/demo/candidate.html"):
        status, headers, body = hub.http("GET", path)
        assert status == 404, path
        assert json.loads(body)["error"]["code"] == "not_found"
    status, _, body = hub.http("POST", "/client/examhub.js", body=b"{}")
    assert status == 405
    assert json.loads(body)["error"]["code"] == "bad_request"


def test_demo_pages_in_dev_mode(hub):
    for path, kind in (("/demo/candidate", "text/html"), ("/demo/proctor", "text/html"),
                       ("/demo/candidate.js", "text/javascript"), ("/demo/proctor.js", "text/javascript"),
                       ("/demo/common.js", "text/javascript"), ("/demo/demo.css", "text/css")):
        status, headers, body = hub.http("GET", path)
        assert status == 200, path
        assert headers["content-type"] == f"{kind}; charset=utf-8"
        assert headers["cache-control"] == "no-cache"
        assert "access-control-allow-origin" not in headers
        assert body


def test_no_demo_pages_or_dev_tokens_outside_dev_mode(tmp_path):
    pool = HubPool(tmp_path)
    prod = pool.start(dev=False)
    try:
        for path in ("/demo/candidate", "/demo/proctor", "/demo/demo.css", "/demo/token?role=admin"):
            status, _, body = prod.http("GET", path)
            assert status == 404, path
        status, headers, _ = prod.http("GET", "/client/examhub.js")
        assert status == 200 and headers["content-type"].startswith("text/javascript")
    finally:
        pool.stop_all()


def test_dev_token_route(hub):
    status, headers, body = hub.http("GET", "/demo/token?role=proctor&sub=p-7&exam=e-9")
    assert status == 200 and headers["cache-control"] == "no-store"
    data = json.loads(body)
    assert {k: data[k] for k in ("role", "sub", "tenant")} == {"role": "proctor", "sub": "p-7", "tenant": "demo"}
    claims = json.loads(b64u_decode(data["token"].split(".")[1]))
    assert (claims["sub"], claims["tenant"], claims["role"], claims["exams"]) == ("p-7", "demo", "proctor", ["e-9"])
    assert 43_000 <= claims["exp"] - claims["iat"] <= 43_200
    with hub.connect() as c:
        assert c.hello(data["token"])["user"] == {"id": "p-7", "tenant": "demo", "role": "proctor"}
    # Defaults: a candidate of tenant demo.
    data = json.loads(hub.http("GET", "/demo/token")[2])
    assert (data["role"], data["sub"], data["tenant"]) == ("candidate", "dev-candidate", "demo")
    for bad in ("role=root", "sub=a%20b", "tenant=x/y", "exam=%22"):
        status, _, body = hub.http("GET", f"/demo/token?{bad}")
        assert status == 400, bad
        assert json.loads(body)["error"]["code"] == "bad_request"
    # Tokens are never logged.
    assert data["token"] not in hub.stderr_tail(1_000_000)
    assert data["token"] not in "\n".join(hub.stdout_lines)
