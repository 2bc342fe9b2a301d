"""The configuration file (issue 10): YAML mirroring every EXAMHUB_* variable, given by EXAMHUB_CONFIG or --config;
the environment wins over the file; `examhub config check` prints the effective values with secrets masked and
every problem with its line."""
from __future__ import annotations

import subprocess

import pytest

from hubclient import binary_path, clean_env


def check(tmp_path, text: str, **env) -> subprocess.CompletedProcess:
    path = tmp_path / "examhub.yaml"
    path.write_text(text)
    return subprocess.run([str(binary_path()), "config", "check", "--config", str(path)], capture_output=True,
                          text=True, timeout=60, env=clean_env(**env))


def test_a_file_configures_the_hub_and_the_environment_wins(start_hub, tmp_path):
    path = tmp_path / "hub.yaml"
    path.write_text("max_subscriptions: 2\nmax_message_bytes: 2048\n# a comment\n")
    hub = start_hub({"EXAMHUB_CONFIG": str(path), "EXAMHUB_MAX_MESSAGE_BYTES": "4096"})
    with hub.client("proctor", "p1") as p:
        p.ok("subscribe", ch="exam:x1:proctor")
        p.ok("subscribe", ch="exam:x2:proctor")
        p.error("subscribe", "too_large", ch="exam:x3:proctor")  # 2, from the file
        r = p.request("ping", pad="y" * 3000)  # under the environment's 4096, over the file's 2048: still served
        assert r["ok"] is True, r


def test_check_prints_the_effective_values_with_secrets_masked(tmp_path):
    out = check(tmp_path, "host: 0.0.0.0\nport: 9000\ndev: 1\njwt_secret: s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t-x\n"
                          "database_url: postgres://hub:pa55word@db:5432/examhub\n"
                          "allowed_origins: [https://a.example.edu, https://b.example.edu]\n",
                EXAMHUB_PORT="9100")
    assert out.returncode == 0, out.stderr
    assert "host = 0.0.0.0" in out.stdout and "port = 9100" in out.stdout and "from the environment" in out.stdout
    assert "allowed_origins = https://a.example.edu,https://b.example.edu" in out.stdout
    assert "s3cr3t" not in out.stdout and "pa55word" not in out.stdout
    assert "jwt_secret = ****" in out.stdout and "postgres://hub:****@db:5432/examhub" in out.stdout
    assert "# configuration ok" in out.stdout


@pytest.mark.parametrize("text, expected", [
    ("port: 8080\nlog_levl: info\n", ":2: unknown setting \"log_levl\""),
    ("port: 8080\nmax_subscriptions: [1, 2]\n", ":2: \"max_subscriptions\" must be a single value"),
    ("port: 8080\nthreads: {a: 1}\n", ":2: \"threads\" must be a single value"),
    ("- port\n", ":1: expected key: value lines"),
    ("port: [unclosed\n", "not valid YAML"),
    ("port: 99999\ndev: 1\n", "EXAMHUB_PORT must be 0-65535"),
    ("rate_limit: fast\ndev: 1\n", "EXAMHUB_RATE_LIMIT must be a number"),
    ("dev: 0\n", "set EXAMHUB_JWT_SECRET or EXAMHUB_JWKS"),
])
def test_check_reports_every_problem_with_its_line(tmp_path, text, expected):
    out = check(tmp_path, text)
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert expected in out.stderr, out.stderr


def test_serve_refuses_a_bad_file_with_its_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("port: 0\nno_such_setting: 1\n")
    proc = subprocess.run([str(binary_path()), "serve", "--config", str(path)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, env=clean_env())
    assert proc.returncode != 0 and f"{path}:2: unknown setting" in proc.stderr, proc.stderr


def test_every_variable_the_hub_reads_has_a_key_in_the_file():
    import re
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    read = set()
    for swift in (root / "Sources").rglob("*.swift"):
        read |= set(re.findall(r'"(EXAMHUB_[A-Z_]+)"', swift.read_text()))
    listed = set(re.findall(r'name: "(EXAMHUB_[A-Z_]+)"', (root / "Sources/examhub/ConfigFile.swift").read_text()))
    assert read - {"EXAMHUB_CONFIG"} <= listed, f"missing from ConfigFile.settings: {sorted(read - listed)}"
