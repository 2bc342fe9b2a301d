"""Fixtures of the ExamHub end-to-end suite: real `examhub serve` processes on 127.0.0.1, port 0, each in a
temporary directory with its own SQLite file, stopped with SIGTERM at teardown (exit code 0 asserted).

Binary: $EXAMHUB_BIN, default `.build/debug/examhub` relative to the repository root. Run from the repository
root: `python3 -m pytest Tests/Integration -q -x`.
"""
from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from hubclient import PROD_AUDIENCE, PROD_ISSUER, PROD_ORIGINS, Hub, binary_path, ec_jwk, rsa_jwk  # noqa: E402


class HubPool:
    """Starts hubs and stops them all at teardown; a hub that does not exit 0 on SIGTERM fails the test."""

    def __init__(self, base: Path):
        self.base = base
        self.hubs: list[Hub] = []
        self._n = itertools.count()

    def start(self, env: dict[str, str] | None = None, **kw) -> Hub:
        hub = Hub(self.base / f"hub{next(self._n)}", env=env, **kw)
        self.hubs.append(hub)
        return hub

    def stop_all(self) -> None:
        problems = []
        for hub in self.hubs:
            rc = hub.stop()
            if rc != 0:
                problems.append(f"hub on port {hub.port} exited {rc} after SIGTERM; stderr:\n{hub.stderr_tail()}")
        assert not problems, "\n".join(problems)


@pytest.fixture(scope="session", autouse=True)
def _binary_exists():
    path = binary_path()
    assert path.is_file() and os.access(path, os.X_OK), (
        f"no examhub binary at {path}: build it (swift build) or set EXAMHUB_BIN")


def _pool(tmp_path_factory, name: str):
    pool = HubPool(tmp_path_factory.mktemp(name))
    return pool


@pytest.fixture(scope="session")
def hub(tmp_path_factory):
    """The default hub: dev mode, a known HS256 secret, default limits."""
    pool = _pool(tmp_path_factory, "default")
    yield pool.start()
    pool.stop_all()


@pytest.fixture(scope="session")
def tight_hub(tmp_path_factory):
    """A dev hub with small limits: 4 KiB messages, 1 s to authenticate, 3 subscriptions per socket, 3 events
    of history per channel, 1 s heartbeats."""
    pool = _pool(tmp_path_factory, "tight")
    yield pool.start({
        "EXAMHUB_MAX_MESSAGE_BYTES": "4096",
        "EXAMHUB_AUTH_TIMEOUT": "1",
        "EXAMHUB_MAX_SUBSCRIPTIONS": "3",
        "EXAMHUB_HISTORY_SIZE": "3",
        "EXAMHUB_HEARTBEAT_SEC": "1",
    })
    pool.stop_all()


@pytest.fixture
def start_hub(tmp_path_factory):
    """Starts a hub with extra EXAMHUB_* settings for one test: `start_hub({"EXAMHUB_X": "1"}, dev=False)`."""
    pool = _pool(tmp_path_factory, "own")
    yield pool.start
    pool.stop_all()


@pytest.fixture(scope="session")
def prod_hub(tmp_path_factory):
    """A production-mode hub (EXAMHUB_DEV=0): an allow-list of origins, an HS256 secret and a JWKS file with one
    RS256 and one ES256 key, issuer and audience checks. `hub.token(...)` adds the right iss and aud; the keys
    are `hub.rsa_key` / `hub.ec_key` (kids `hub.rsa_kid` / `hub.ec_kid`)."""
    import json

    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    pool = _pool(tmp_path_factory, "prod")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks_path = pool.base / "jwks.json"
    jwks_path.write_text(json.dumps({"keys": [rsa_jwk(rsa_key.public_key(), "rsa-1"),
                                              ec_jwk(ec_key.public_key(), "ec-1")]}))
    hub = pool.start({
        "EXAMHUB_JWKS": str(jwks_path),
        "EXAMHUB_JWT_ISSUER": PROD_ISSUER,
        "EXAMHUB_JWT_AUDIENCE": PROD_AUDIENCE,
        "EXAMHUB_ALLOWED_ORIGINS": ",".join(PROD_ORIGINS),
    }, dev=False, default_claims={"iss": PROD_ISSUER, "aud": PROD_AUDIENCE})
    hub.rsa_key, hub.rsa_kid = rsa_key, "rsa-1"
    hub.ec_key, hub.ec_kid = ec_key, "ec-1"
    hub.jwks_path = jwks_path
    yield hub
    pool.stop_all()
