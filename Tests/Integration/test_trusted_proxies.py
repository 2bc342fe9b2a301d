"""EXAMHUB_TRUSTED_PROXIES: `X-Forwarded-For` and `Forwarded` name the client only when the TCP peer is a trusted proxy;
the client's address is what the per-IP connection limit counts and what the logs show. From anyone else the
headers are ignored."""
from __future__ import annotations

import pytest
from websockets.exceptions import InvalidStatus

from examkit import wait_until
from hubclient import refused_status, run_cli


def _open(hub, headers: dict[str, str]):
    return hub.connect(headers=headers)


def test_behind_a_trusted_proxy_each_client_has_its_own_limit(start_hub):
    hub = start_hub({"EXAMHUB_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1", "EXAMHUB_MAX_CONNECTIONS_PER_IP": "2",
                     "EXAMHUB_LOG_LEVEL": "debug"})
    opened = []
    try:
        # The proxy (127.0.0.1) appends what it saw; an earlier hop was written by the client (spoofable, ignored).
        xff = {"X-Forwarded-For": "6.6.6.6, 198.51.100.1, 10.2.3.4"}
        opened += [_open(hub, xff), _open(hub, xff)]
        with pytest.raises(InvalidStatus) as refused:
            _open(hub, xff)
        assert refused_status(refused)[0] == 429
        # Another client behind the same proxy is not affected.
        opened.append(_open(hub, {"X-Forwarded-For": "198.51.100.2"}))
        # RFC 7239 Forwarded, IPv6 quoted with a port: its own count; it wins over X-Forwarded-For.
        fwd = {"Forwarded": 'for="[2001:db8::7]:4711";proto=https', "X-Forwarded-For": "198.51.100.1"}
        opened += [_open(hub, fwd), _open(hub, fwd)]
        with pytest.raises(InvalidStatus) as refused:
            _open(hub, fwd)
        assert refused_status(refused)[0] == 429
        # The logs name the client, not the proxy.
        wait_until(lambda: "examhub.ip=198.51.100.2" in hub.stderr_tail(200_000), 5, what="a log line with the client ip")
        assert "examhub.ip=2001:db8::7" in hub.stderr_tail(200_000)
        # Closing frees the client's slot.
        opened.pop(0).close()
        wait_until(lambda: _try(hub, xff, opened), 5, what="a freed slot")
    finally:
        for c in opened:
            c.close()


def _try(hub, headers, opened) -> bool:
    try:
        opened.append(_open(hub, headers))
        return True
    except InvalidStatus:
        return False


def test_an_untrusted_peer_cannot_choose_its_address(start_hub):
    hub = start_hub({"EXAMHUB_TRUSTED_PROXIES": "10.0.0.0/8", "EXAMHUB_MAX_CONNECTIONS_PER_IP": "2"})
    opened = []
    try:
        opened += [_open(hub, {"X-Forwarded-For": "198.51.100.1"}), _open(hub, {"Forwarded": "for=198.51.100.2"})]
        # Both counted as 127.0.0.1, whatever they claimed.
        with pytest.raises(InvalidStatus) as refused:
            _open(hub, {"X-Forwarded-For": "198.51.100.3"})
        assert refused_status(refused)[0] == 429
    finally:
        for c in opened:
            c.close()


def test_garbage_forwarding_headers_fall_back_to_the_proxy(start_hub):
    hub = start_hub({"EXAMHUB_TRUSTED_PROXIES": "127.0.0.1", "EXAMHUB_MAX_CONNECTIONS_PER_IP": "1"})
    opened = []
    try:
        opened.append(_open(hub, {"X-Forwarded-For": "not-an-ip"}))
        # Counted as the proxy itself: the next socket from the proxy with garbage is over the limit...
        with pytest.raises(InvalidStatus):
            _open(hub, {"Forwarded": 'for="unterminated'})
        # ...while a readable header names a client of its own.
        opened.append(_open(hub, {"X-Forwarded-For": "203.0.113.50"}))
    finally:
        for c in opened:
            c.close()


def test_a_bad_proxy_list_is_a_configuration_error():
    check = run_cli("config", "check", env={"EXAMHUB_DEV": "1", "EXAMHUB_TRUSTED_PROXIES": "10.0.0.0/8, proxy.local"})
    assert check.returncode == 1 and "EXAMHUB_TRUSTED_PROXIES" in check.stderr and "proxy.local" in check.stderr


def test_the_config_file_takes_lists_for_proxies_and_compressed_channels(tmp_path):
    path = tmp_path / "hub.yaml"
    path.write_text("dev: 1\ntrusted_proxies: [10.0.0.0/8, \"::1\"]\ncompression_channels: [attempt, exam]\n"
                    "compression_window_bits: 10\n")
    check = run_cli("config", "check", "--config", str(path))
    assert check.returncode == 0, check.stderr
    assert "trusted_proxies = 10.0.0.0/8,::1" in check.stdout
    assert "compression_channels = attempt,exam" in check.stdout
    assert "permessage-deflate, window 10 bits" in check.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("dev: 1\ncompression_channels: [attempt, lobby]\ncompression_window_bits: 8\n")
    check = run_cli("config", "check", "--config", str(bad))
    assert check.returncode == 1 and "lobby" in check.stderr, check.stderr
