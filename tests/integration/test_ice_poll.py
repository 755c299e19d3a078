"""The shared ICE thread's epoll poll function (webrtc.ice_epoll; src/webrtc/ice_poll.h), seen
from /proc: during a call every ICE socket of both legs is in the gateway's epoll set, the set
follows sockets that come and go, and audio and events cross both ways; off, nothing is."""
from __future__ import annotations

import os
import re
import threading
import time

from conftest import GATEWAY_KEY, default_gateway_config
from peers.aiortc_client import run_call_sync


def fd_links(pid):
    out = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            pass  # closed meanwhile
    return out


def udp_inodes(pid):
    inodes = set()
    for table in ("udp", "udp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            for line in list(f)[1:]:
                inodes.add(line.split()[9])
    return inodes


def udp_socket_fds(pid):
    """fd -> inode of the process's UDP sockets (the ICE candidates' sockets: the gateway opens
    no other UDP socket on loopback)."""
    udp = udp_inodes(pid)
    out = {}
    for fd, link in fd_links(pid).items():
        m = re.fullmatch(r"socket:\[(\d+)\]", link)
        if m and m.group(1) in udp:
            out[fd] = m.group(1)
    return out


def epoll_watched(pid):
    """The fds every epoll set of the process watches (from /proc/PID/fdinfo)."""
    watched = set()
    for fd, link in fd_links(pid).items():
        if link != "anon_inode:[eventpoll]":
            continue
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                for line in f:
                    m = re.match(r"tfd:\s+(\d+)", line)
                    if m:
                        watched.add(int(m.group(1)))
        except OSError:
            pass
    return watched


def wait_until(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


def call_in_background(gw, duration):
    box = {}

    def run():
        box["result"] = run_call_sync(
            gw.url, GATEWAY_KEY, model="gpt-realtime", duration=duration,
            send_events=[{"type": "test.echo", "payload": f"p{i}"} for i in range(5)])

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def check_call(box):
    result = box["result"]
    assert result.status == 201, result.error_body
    assert len(result.events_of("test.echoed")) == 5
    assert result.audio_frames_received > 20


def new_ice_sockets(pid, before, timeout=15):
    """The UDP sockets a call opened (both legs gathered), waited for with a bound."""
    def grown():
        now = udp_socket_fds(pid)
        fresh = {fd: ino for fd, ino in now.items() if before.get(fd) != ino}
        return fresh if len(fresh) >= 2 else None
    return wait_until(grown, timeout) or {}


def test_epoll_watches_every_ice_socket_of_a_call_and_follows_them(fake_upstream,
                                                                   gateway_factory):
    gw = gateway_factory(default_gateway_config(fake_upstream))
    pid = gw.proc.pid
    before = udp_socket_fds(pid)
    for round_ in range(2):  # the second call reuses the first one's fd numbers
        thread, box = call_in_background(gw, duration=3.0)
        sockets = new_ice_sockets(pid, before)
        assert sockets, f"round {round_}: no ICE socket appeared"
        # Both legs' sockets are polled through epoll once their receive callbacks are attached
        # (libnice opens them at gathering, before webrtcbin attaches): wait, bounded, until every
        # ICE socket the call has open is in the set.
        def unwatched():
            now = {fd for fd, ino in udp_socket_fds(pid).items() if before.get(fd) != ino}
            return now - epoll_watched(pid) if now else {"no socket"}
        assert wait_until(lambda: not unwatched(), 10), (round_, unwatched(), sockets)
        thread.join(30)
        assert not thread.is_alive()
        check_call(box)
        # Call over: its sockets leave the set (the array shrank: the poller deletes them).
        gone = wait_until(lambda: not (set(sockets) & epoll_watched(pid) &
                                       set(udp_socket_fds(pid))), 15)
        assert gone, (round_, set(sockets) & epoll_watched(pid))


def test_epoll_off_polls_as_before(fake_upstream, gateway_factory):
    config = default_gateway_config(fake_upstream)
    config["webrtc"] = {"ice_epoll": False}
    gw = gateway_factory(config)
    pid = gw.proc.pid
    before = udp_socket_fds(pid)
    thread, box = call_in_background(gw, duration=2.0)
    sockets = new_ice_sockets(pid, before)
    assert sockets
    assert not (set(sockets) & epoll_watched(pid))
    thread.join(30)
    check_call(box)


def inet6_socket_fds(pid):
    inodes = set()
    for table in ("udp6", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            for line in list(f)[1:]:
                inodes.add(line.split()[9])
    return {fd for fd, link in fd_links(pid).items()
            if (m := re.fullmatch(r"socket:\[(\d+)\]", link)) and m.group(1) in inodes}


def test_ipv6_off_opens_no_ipv6_socket(fake_upstream, gateway_factory):
    """webrtc.ice_ipv6 false: IPv6 candidates were never advertised; now their sockets are not
    opened either (each was one more fd for the shared ICE thread to poll)."""
    config = default_gateway_config(fake_upstream)
    config["webrtc"] = {"ice_ipv6": False}
    gw = gateway_factory(config)
    pid = gw.proc.pid
    v6_before = inet6_socket_fds(pid)
    before = udp_socket_fds(pid)
    thread, box = call_in_background(gw, duration=2.5)
    sockets = new_ice_sockets(pid, before)
    assert sockets  # the call gathered (IPv4)
    # Sampled for the whole call (gathering, connected, teardown): never an IPv6 socket.
    seen_v6 = set()
    deadline = time.monotonic() + 30
    while thread.is_alive() and time.monotonic() < deadline:
        seen_v6 |= inet6_socket_fds(pid) - v6_before
        time.sleep(0.05)
    assert seen_v6 == set()
    thread.join(30)
    check_call(box)
    assert ":" not in " ".join(line.split()[4] for line in box["result"].answer_sdp.splitlines()
                                if line.startswith("a=candidate"))


def ice_threads(pid):
    """{tid: (name, voluntary context switches)} of the process's shared ICE threads."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            if not name.startswith("rtgw-ice"):
                continue
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                switches = int(re.search(r"voluntary_ctxt_switches:\s+(\d+)", f.read()).group(1))
            out[tid] = (name, switches)
        except (OSError, AttributeError):
            pass  # the thread ended meanwhile
    return out


def test_two_ice_threads_share_two_concurrent_calls(fake_upstream, gateway_factory):
    """webrtc.ice_threads 2 (src/webrtc/ice_context.h): exactly two ICE threads, `rtgw-ice-0` and
    `rtgw-ice-1`; two concurrent calls carry audio and events both ways, their agents spread over
    both threads (each one wakes up for packets), and every ICE socket is in an epoll set."""
    config = default_gateway_config(fake_upstream)
    config["webrtc"] = {"ice_threads": 2}
    gw = gateway_factory(config)
    pid = gw.proc.pid
    before = udp_socket_fds(pid)
    calls = [call_in_background(gw, duration=4.0) for _ in range(2)]
    # Both calls' sockets (2 legs each, at least one socket per leg), then all of them watched.
    def all_sockets():
        now = {fd for fd, ino in udp_socket_fds(pid).items() if before.get(fd) != ino}
        return now if len(now) >= 4 else None
    assert wait_until(all_sockets, 20), udp_socket_fds(pid)
    def unwatched():
        now = {fd for fd, ino in udp_socket_fds(pid).items() if before.get(fd) != ino}
        return now - epoll_watched(pid) if now else {"no socket"}
    assert wait_until(lambda: not unwatched(), 10), unwatched()
    threads = ice_threads(pid)
    assert sorted(name for name, _ in threads.values()) == ["rtgw-ice-0", "rtgw-ice-1"], threads
    # Media is flowing now: each thread wakes up for its agents' packets (an ICE thread with no
    # agent would not wake at all: epoll with no timers due).
    woke = {}
    def both_woke():
        now = ice_threads(pid)
        woke.update({now[t][0]: now[t][1] - threads[t][1] for t in threads if t in now})
        return all(n > 20 for n in woke.values()) and len(woke) == 2
    assert wait_until(both_woke, 10), woke
    for thread, box in calls:
        thread.join(30)
        assert not thread.is_alive()
        check_call(box)
