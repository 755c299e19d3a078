"""usrsctp stays up for the life of the gateway (webrtc/sctp_stack.h, issue 28).

GStreamer 1.22's sctp plugin starts usrsctp with the process's first SCTP association and calls
usrsctp_finish() when the last one goes, so a gateway that went idle between calls stopped the
stack (and its `SCTP timer` thread) and started it again for the next call. The gateway now holds
one idle association from start-up: the stack, and its one timer thread, are there before the
first call and stay through calls coming and going.
"""
from __future__ import annotations

import time

from conftest import default_gateway_config
from peers.aiortc_client import run_call_sync
from test_audio_relay import thread_names


def sctp_timers(pid: int) -> int:
    return sum(1 for n in thread_names(pid) if n == "SCTP timer")


def assert_one_timer_for(pid: int, seconds: float, what) -> None:
    """Samples the timer threads every 0.1 s for `seconds`: while the ended call's pipeline is
    stopped and freed (its association freed), the count must stay 1."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert sctp_timers(pid) == 1, (what, thread_names(pid))
        time.sleep(0.1)


def test_the_sctp_stack_is_up_before_the_first_call_and_stays_between_calls(
        fake_upstream, gateway_factory):
    gw = gateway_factory(default_gateway_config(fake_upstream))
    pid = gw.proc.pid
    # Up from start-up (the timer thread names itself once started: bounded wait).
    deadline = time.monotonic() + 5
    while sctp_timers(pid) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sctp_timers(pid) == 1, thread_names(pid)
    for n in range(2):
        result = run_call_sync(gw.url, gw.key, "gpt-realtime",
                               send_events=[{"type": "response.create"}], duration=20,
                               until=lambda r: r.events_of("response.done"), close="hangup")
        assert result.channel_opened and result.events_of("response.done"), (n, result)
        # The call's associations go when its pipeline is freed; the stack (one timer thread)
        # does not.
        assert_one_timer_for(pid, 3.0, n)
    assert "SCTP stack: not held" not in gw.stderr(), gw.stderr()[-2000:]
