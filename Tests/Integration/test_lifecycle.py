"""The process (PROTOCOL.md section 7): SIGTERM drain (close 1001, exit 0), dev tokens, configuration errors, and
the `examhub token` / `examhub migrate` commands."""
from __future__ import annotations

import hashlib
import hmac
import json
import signal
import sqlite3
import subprocess
import time

import pytest

from hubclient import DEFAULT_SECRET, LISTENING, b64u_decode, binary_path, clean_env, run_cli


def test_sigterm_drains_open_sockets_with_1001_and_exits_0(start_hub):
    hub = start_hub({"EXAMHUB_DRAIN_SEC": "5"})
    authed = hub.client("proctor", "p-drain", label="authenticated")
    authed.ok("subscribe", ch="exam:e1:proctor")
    pending = hub.connect(label="no hello yet")
    bearer = hub.connect(bearer=hub.token("service", "s-drain"), label="bearer")
    bearer.ping()
    started = time.monotonic()
    hub.proc.send_signal(signal.SIGTERM)
    for c in (authed, pending, bearer):
        c.expect_close(1001, timeout=5)
    assert hub.proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 5, "the drain waited for sockets that had already closed"
    with pytest.raises(OSError):
        hub.ws()  # no longer listening


def test_drain_does_not_wait_forever_for_a_peer_that_ignores_the_close(start_hub):
    hub = start_hub({"EXAMHUB_DRAIN_SEC": "1"})
    raw = hub.raw(headers={"Authorization": f"Bearer {hub.token('proctor', 'p-deaf')}"})
    try:
        started = time.monotonic()
        hub.proc.send_signal(signal.SIGTERM)
        fin, opcode, payload = raw.recv_frame(timeout=5)  # the 1001, never answered
        assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == 1001
        assert hub.proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 6
    finally:
        raw.close()


def test_dev_mode_prints_a_working_token_per_role(hub):
    printed = {}
    for line in hub.stdout_lines:
        parts = line.strip().split(": ", 1)
        if len(parts) == 2 and parts[0] in {"candidate", "proctor", "admin", "service"}:
            printed[parts[0]] = parts[1]
    assert set(printed) == {"candidate", "proctor", "admin", "service"}, hub.stdout_lines
    assert LISTENING.match(hub.stdout_lines[-1]), "the listening line comes after the dev tokens"
    for role, token in printed.items():
        with hub.connect() as c:
            assert c.hello(token)["user"] == {"id": f"dev-{role}", "tenant": "demo", "role": role}


# ----------------------------------------------------------------------------------------------- token


def test_token_command_mints_a_verifiable_hs256_token(hub):
    before = time.time()
    out = run_cli("token", "--role", "proctor", "--sub", "p-cli", "--tenant", "t1", "--exam", "e1", "--exam", "e2",
                  "--ttl", "120", env={"EXAMHUB_JWT_SECRET": DEFAULT_SECRET})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1
    token = lines[0]
    head, body, sig = token.split(".")
    assert json.loads(b64u_decode(head))["alg"] == "HS256"
    payload = json.loads(b64u_decode(body))
    assert (payload["sub"], payload["tenant"], payload["role"], payload["exams"]) == ("p-cli", "t1", "proctor",
                                                                                       ["e1", "e2"])
    assert before + 115 <= payload["exp"] <= time.time() + 125
    expected = hmac.new(DEFAULT_SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert hmac.compare_digest(b64u_decode(sig), expected)
    with hub.connect() as c:
        data = c.hello(token)
        assert data["user"] == {"id": "p-cli", "tenant": "t1", "role": "proctor"}
        assert data["exp"] == int(payload["exp"])
        c.ok("subscribe", ch="exam:e2:proctor")
        c.error("subscribe", "forbidden", ch="exam:e3:proctor")


def test_token_command_secret_flag_and_default_ttl(hub):
    out = run_cli("token", "--role", "candidate", "--sub", "c-cli", "--tenant", "t1", "--secret", DEFAULT_SECRET,
                  env={"EXAMHUB_JWT_SECRET": "another-secret-that-is-long-enough-0123456789"})
    assert out.returncode == 0, out.stderr
    payload = json.loads(b64u_decode(out.stdout.strip().split(".")[1]))
    assert "exams" not in payload
    assert 3590 <= payload["exp"] - time.time() <= 3610
    with hub.connect() as c:
        c.hello(out.stdout.strip())


@pytest.mark.parametrize("args,env,needle", [
    (["--role", "candidate", "--sub", "u", "--tenant", "t1"], {}, "EXAMHUB_JWT_SECRET"),
    (["--role", "king", "--sub", "u", "--tenant", "t1"], {"EXAMHUB_JWT_SECRET": DEFAULT_SECRET}, "--role"),
    (["--role", "candidate", "--sub", "u", "--tenant", "t1", "--ttl", "0"], {"EXAMHUB_JWT_SECRET": DEFAULT_SECRET},
     "--ttl"),
    (["--role", "candidate", "--sub", "u", "--tenant", "t 1"], {"EXAMHUB_JWT_SECRET": DEFAULT_SECRET}, "--tenant"),
    (["--role", "candidate", "--tenant", "t1"], {"EXAMHUB_JWT_SECRET": DEFAULT_SECRET}, "--sub"),
], ids=["no secret", "bad role", "ttl 0", "bad tenant", "no sub"])
def test_token_command_refuses_bad_arguments(args, env, needle):
    out = run_cli("token", *args, env=env)
    assert out.returncode > 0, (out.returncode, out.stdout, out.stderr)
    assert out.stdout.strip() == ""
    assert needle in out.stderr, out.stderr


# ----------------------------------------------------------------------------------------------- migrate


def test_migrate_applies_the_schema_once(tmp_path):
    db = tmp_path / "sub" / "m.sqlite"
    env = {"EXAMHUB_DATABASE_URL": f"sqlite://{db}"}
    first = run_cli("migrate", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    expected = ["applied 0001_core", "applied 0002_attempt_clock", "applied 0003_proctoring", "applied 0004_chat",
                "applied 0005_outbox_workers", "applied 0006_cross_node"]  # 0006 is PostgreSQL's alone (several nodes): nothing to create on SQLite
    assert first.stdout.strip().splitlines() == expected
    again = run_cli("migrate", env=env, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.strip().splitlines() == expected
    con = sqlite3.connect(db)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert con.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(expected)
    finally:
        con.close()
    assert {"exams", "attempts", "answers", "save_ops", "conversations", "outbox"} <= tables


def test_migrate_flag_and_default_location(tmp_path):
    flagged = run_cli("migrate", "--database-url", f"sqlite://{tmp_path}/flag.sqlite", cwd=tmp_path)
    assert flagged.returncode == 0 and "applied 0001_core" in flagged.stdout, flagged.stderr
    assert (tmp_path / "flag.sqlite").is_file()
    default = run_cli("migrate", cwd=tmp_path)
    assert default.returncode == 0 and "applied 0001_core" in default.stdout, default.stderr
    assert (tmp_path / ".examhub" / "examhub.db").is_file()


def test_migrate_refuses_a_bad_url(tmp_path):
    out = run_cli("migrate", env={"EXAMHUB_DATABASE_URL": "mysql://x"}, cwd=tmp_path)
    assert out.returncode > 0 and "EXAMHUB_DATABASE_URL" in out.stderr, (out.returncode, out.stderr)


# ----------------------------------------------------------------------------------------------- serve


@pytest.mark.parametrize("env,needle", [
    ({"EXAMHUB_DEV": "0"}, "EXAMHUB_JWT_SECRET"),
    ({"EXAMHUB_DEV": "0", "EXAMHUB_JWT_SECRET": DEFAULT_SECRET, "EXAMHUB_ALLOWED_ORIGINS": "*"},
     "EXAMHUB_ALLOWED_ORIGINS"),
    ({"EXAMHUB_PORT": "eighty"}, "EXAMHUB_PORT"),
    ({"EXAMHUB_DEV": "maybe"}, "EXAMHUB_DEV"),
    ({"EXAMHUB_MAX_MESSAGE_BYTES": "10"}, "EXAMHUB_MAX_MESSAGE_BYTES"),
    ({"EXAMHUB_AUTH_TIMEOUT": "0"}, "EXAMHUB_AUTH_TIMEOUT"),
    ({"EXAMHUB_JWKS": "/nonexistent/jwks.json", "EXAMHUB_DEV": "0"}, "EXAMHUB_JWKS"),
], ids=["prod without secret", "prod with * origins", "port not a number", "dev not a bool",
        "message limit too small", "auth timeout 0"," missing JWKS file"])
def test_serve_refuses_bad_configuration(tmp_path, env, needle):
    out = run_cli("serve", env={"EXAMHUB_PORT": "0", "EXAMHUB_DATABASE_URL": f"sqlite://{tmp_path}/db.sqlite",
                                **env}, cwd=tmp_path, timeout=20)
    assert out.returncode > 0, (out.returncode, out.stdout, out.stderr)
    assert "listening" not in out.stdout
    assert needle in out.stderr, out.stderr


@pytest.mark.parametrize("command", ["serve", "token"])
def test_short_hs256_secret_does_not_crash(tmp_path, command):
    """EXAMHUB_JWT_SECRET shorter than 32 bytes must either work or be refused with a clear message, not kill the
    process with a signal (SIGILL from a failed assertion in a debug build)."""
    env = clean_env(EXAMHUB_JWT_SECRET="short-secret", EXAMHUB_PORT="0",
                    EXAMHUB_DATABASE_URL=f"sqlite://{tmp_path}/db.sqlite")
    args = ["serve"] if command == "serve" else ["token", "--role", "admin", "--sub", "a", "--tenant", "t1"]
    proc = subprocess.Popen([str(binary_path()), *args], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        if command == "serve":
            line = proc.stdout.readline()
            while line and not LISTENING.match(line):
                line = proc.stdout.readline()
            if line:  # it started: it must also stop cleanly
                proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode >= 0, (
        f"examhub {command} died from signal {-proc.returncode} with a short secret: {stderr[-600:]}")
    assert "crashed" not in stderr.lower(), stderr[-600:]
    if proc.returncode != 0:
        assert "EXAMHUB_JWT_SECRET" in stderr or "secret" in stderr.lower(), stderr[-600:]


def test_readyz_reports_draining_during_the_drain(start_hub):
    """A keep-alive HTTP connection opened before SIGTERM sees /readyz turn 503 {ready: false, draining: true}
    while a socket that ignores its 1001 holds the drain open (EXAMHUB_DRAIN_SEC=2)."""
    import http.client

    import contract

    hub = start_hub({"EXAMHUB_DRAIN_SEC": "2"})
    conn = http.client.HTTPConnection(hub.host, hub.port, timeout=5)
    raw = hub.raw(headers={"Authorization": f"Bearer {hub.token('proctor', 'p-deaf')}"})
    try:
        conn.request("GET", "/readyz")
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["draining"] is False
        hub.proc.send_signal(signal.SIGTERM)
        fin, opcode, payload = raw.recv_frame(timeout=5)  # the drain has begun
        assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == 1001
        conn.request("GET", "/readyz")
        resp = conn.getresponse()
        doc = json.loads(resp.read())
        contract.validate("schemas/http/ready.json", doc)
        assert resp.status == 503 and doc == {"ready": False, "store": True, "draining": True}, (resp.status, doc)
        assert hub.proc.wait(timeout=10) == 0
    finally:
        conn.close()
        raw.close()
