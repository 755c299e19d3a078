"""SCTP association ids (issue 22): every webrtcbin picks its id at random in 1.22; one that is
already live in the process makes the new sctpenc fail to reach PAUSED with its task running,
and finalizing that webrtcbin hangs (GStreamer issue 4188). The gateway allocates ids
process-wide. Here the allocator is made to propose the same id every time (the test hook
RTGW_TEST_SCTP_ID_PROPOSAL), the clash the random choice would make: every leg still gets an id
of its own, every data channel works, and every teardown completes."""
from __future__ import annotations

import asyncio
import os

from cleanstate import assert_clean, snapshot, warm_up, with_admin
from conftest import GATEWAY_KEY, default_gateway_config
from peers.aiortc_client import AiortcCall
from peers.common import http_request

MODEL = "gpt-realtime"
FORCED = 4242
CALLS = 3


def get_call(gw, call_id):
    return http_request("GET", f"{gw.url}/v1/realtime/calls/{call_id}",
                        headers={"Authorization": f"Bearer {GATEWAY_KEY}"}).json()


def test_forced_id_clash_gets_distinct_ids_and_tears_down(fake_upstream, gateway_factory):
    # RTGW_TEST_SCTP_ID_UNALLOCATED instead of ..._PROPOSAL shows the old behaviour: the same id
    # on every leg (see docs/media-trust.md for what it does).
    config = with_admin(default_gateway_config(fake_upstream))
    hook = os.environ.get("RTGW_TEST_SCTP_ID_HOOK", "RTGW_TEST_SCTP_ID_PROPOSAL")
    gw = gateway_factory(config, env={hook: str(FORCED)})
    warm_up(gw, GATEWAY_KEY)
    fake_upstream.reset()
    base = snapshot(gw)

    async def scenario():
        calls = [AiortcCall(gw.url, GATEWAY_KEY, model=MODEL,
                            send_events=[{"type": "response.create"}]) for _ in range(CALLS)]
        # One after the other, each live before the next starts: every new leg's proposal is
        # an id a live association holds.
        for call in calls:
            await call.connect()
            assert call.connected, call.result.error_body
            ok = await call.wait_for(
                lambda r: any(e.get("type") == "response.done" for e in r.events), 15)
            assert ok, ("no response.done: the data channel of a clashing leg did not work",
                        call.result.events)
        states = [get_call(gw, c.result.call_id) for c in calls]
        for c in calls:
            await c.close("hangup")
        return states
    states = asyncio.run(scenario())
    ids = [s["sctp_association_ids"][leg] for s in states for leg in ("client", "upstream")]
    assert None not in ids, states
    assert len(set(ids)) == len(ids), ids
    assert FORCED in ids, ids  # the proposal was taken when it was free
    # Teardown completed for every call: no live call, fds and threads back to the baseline.
    assert_clean(gw, base)
    assert gw.stderr().count("pipeline stopped") >= CALLS, gw.stderr()[-4000:]
