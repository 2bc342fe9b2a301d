"""Recovery with `subscribe.since` (PROTOCOL.md section 5.5): missed events replayed in order while the
channel's history holds them, otherwise `recovered: false`."""
from __future__ import annotations

import pytest

from test_channels import risk, uid


def publish_n(pub, ch: str, n: int, start: int = 0) -> list[dict]:
    return [pub.ok("publish", ch=ch, type="risk.changed", data=risk("a1", start + i)) for i in range(n)]


def test_reconnect_with_since_recovers_exactly_the_missed_events_in_order(hub):
    ch = f"exam:{uid('e')}:proctor"
    with hub.client("service", "s1") as pub:
        sub = hub.client("proctor", "p1", label="first connection")
        sub.ok("subscribe", ch=ch)
        publish_n(pub, ch, 2)
        seen = sub.events_n(2)
        epoch = sub.ok("subscribe", ch=ch)["epoch"]
        last = seen[-1]["seq"]
        sub.close()

        missed = publish_n(pub, ch, 7, start=50)
        assert [m["seq"] for m in missed] == list(range(last + 1, last + 8))

        with hub.client("proctor", "p1", label="second connection") as again:
            data = again.ok("subscribe", ch=ch, since={"epoch": epoch, "seq": last})
            assert data == {"epoch": epoch, "seq": last + 7, "recovered": True}
            replay = again.events_n(7)
            assert [e["seq"] for e in replay] == list(range(last + 1, last + 8))
            assert [e["data"] for e in replay] == [risk("a1", 50 + i) for i in range(7)]
            again.assert_no_event()  # exactly the missed events, nothing more
            # Live events continue after the replay without a gap or a duplicate.
            publish_n(pub, ch, 1, start=90)
            live = again.event()
            assert live["seq"] == last + 8 and live["data"] == risk("a1", 90)
            again.assert_no_event()


def test_since_the_latest_seq_recovers_nothing_missed(hub):
    ch = f"exam:{uid('e')}:proctor"
    with hub.client("service", "s1") as pub, hub.client("proctor", "p1") as sub:
        epoch = sub.ok("subscribe", ch=ch)["epoch"]
        publish_n(pub, ch, 3)
        sub.events_n(3)
        sub.ok("unsubscribe", ch=ch)
        data = sub.ok("subscribe", ch=ch, since={"epoch": epoch, "seq": 3})
        assert data == {"epoch": epoch, "seq": 3, "recovered": True}
        sub.assert_no_event()


def test_since_zero_on_a_fresh_channel_recovers(hub):
    ch = f"exam:{uid('e')}:proctor"
    with hub.client("service", "s1") as pub, hub.client("proctor", "p1") as sub:
        epoch = pub.ok("publish", ch=ch, type="risk.changed", data=risk("a1", 1))["epoch"]
        data = sub.ok("subscribe", ch=ch, since={"epoch": epoch, "seq": 0})
        assert data == {"epoch": epoch, "seq": 1, "recovered": True}
        assert sub.event()["seq"] == 1


def test_since_with_a_wrong_epoch_is_not_recovered(hub):
    ch = f"exam:{uid('e')}:proctor"
    with hub.client("service", "s1") as pub, hub.client("proctor", "p1") as sub:
        epoch = publish_n(pub, ch, 3)[0]["epoch"]
        wrong = "0" * 16 if epoch != "0" * 16 else "1" * 16
        data = sub.ok("subscribe", ch=ch, since={"epoch": wrong, "seq": 1})
        assert data == {"epoch": epoch, "seq": 3, "recovered": False}
        sub.assert_no_event()  # nothing replayed: the client must re-read state
        publish_n(pub, ch, 1)
        assert sub.event()["seq"] == 4  # but live delivery works


def test_since_in_the_future_is_not_recovered(hub):
    ch = f"exam:{uid('e')}:proctor"
    with hub.client("service", "s1") as pub, hub.client("proctor", "p1") as sub:
        epoch = publish_n(pub, ch, 2)[0]["epoch"]
        data = sub.ok("subscribe", ch=ch, since={"epoch": epoch, "seq": 50})
        assert data == {"epoch": epoch, "seq": 2, "recovered": False}
        sub.assert_no_event()


def test_gap_beyond_history_size_is_not_recovered(tight_hub):
    """EXAMHUB_HISTORY_SIZE=3: three missed events replay; four do not."""
    hub = tight_hub
    ch = f"exam:{uid('e')}:proctor"
    with hub.client("service", "s1") as pub, hub.client("proctor", "p1") as sub:
        epoch = publish_n(pub, ch, 1)[0]["epoch"]
        publish_n(pub, ch, 3, start=10)  # seq 2..4; history holds 2, 3, 4
        data = sub.ok("subscribe", ch=ch, since={"epoch": epoch, "seq": 1})
        assert data == {"epoch": epoch, "seq": 4, "recovered": True}
        assert [e["seq"] for e in sub.events_n(3)] == [2, 3, 4]
        sub.assert_no_event()
    with hub.client("proctor", "p1") as late:
        data = late.ok("subscribe", ch=ch, since={"epoch": epoch, "seq": 0})  # seq 1 is gone
        assert data == {"epoch": epoch, "seq": 4, "recovered": False}
        late.assert_no_event()


@pytest.mark.parametrize("since", [
    "yesterday", 5, [1], {"seq": 1}, {"epoch": "x"}, {"epoch": 1, "seq": 1}, {"epoch": "x", "seq": -1},
    {"epoch": "x", "seq": "1"}, {"epoch": "x", "seq": 1.5}, {"epoch": "x" * 65, "seq": 1},
])
def test_malformed_since_is_bad_request(hub, since):
    with hub.client("proctor", "p1") as sub:
        sub.error("subscribe", "bad_request", ch=f"exam:{uid('e')}:proctor", since=since)
        sub.ping()


def test_since_null_is_a_plain_subscribe(hub):
    with hub.client("proctor", "p1") as sub:
        data = sub.ok("subscribe", ch=f"exam:{uid('e')}:proctor", since=None)
        assert data["recovered"] is False and data["seq"] == 0
