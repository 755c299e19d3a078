"""Budget periods (issue 25 item 1): ``budget_duration`` resets the spend a budget counts at the
end of each period; periods are aligned on the unix epoch, so every instance agrees.

A key with ``budget_tokens: 50`` and a 4 s period spends 57 tokens (one turn of the fake
upstream): for the rest of that period its next ``response.create`` gets ``insufficient_quota``
and a new session is refused (429); in the next period the same live session's
``response.create`` runs again and a new session is admitted. The usage log keeps both turns.
Against the usage log alone, and (separately) two instances sharing Redis, where the shared
counter is one hash per period (``rtgw:budget:<key>:<period start>``).
"""
from __future__ import annotations

import asyncio
import json
import math
import time

from conftest import GATEWAY_KEY, default_gateway_config
from peers.common import wait_until
from peers.ws_client import WsClient, run_ws_session
# The cluster file's Redis fixture and helpers (a redis-server of the test's own).
from test_cluster import cluster_env, redis, redis_up  # noqa: F401 - `redis` is a fixture
# The ledger file's PostgreSQL fixtures (a server of the test's own, a database per test).
from test_ledger import pg, postgres_server  # noqa: F401 - fixtures

MODEL = "gpt-realtime"
TURN_TOKENS = 57  # the fake upstream's usage per response.done
PERIOD = 4        # seconds: budget_duration "4s"


def period_of(t: float) -> int:
    return int(math.floor(t / PERIOD) * PERIOD)


def to_next_period(margin: float = 0.15) -> None:
    """Sleeps until just after the next period starts (a whole period to work in)."""
    time.sleep(period_of(time.time()) + PERIOD - time.time() + margin)


def read_usage_log(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def quota_errors(result):
    return [e for e in result.events_of("error") if e["error"]["code"] == "insufficient_quota"]


async def over_then_through(url_spend: str, url_check: str, on_spent=None):
    """One session on url_spend spends a turn; then, in that period, url_check refuses a new
    session and the live session's response.create is refused; in the next period both go through.
    Returns (spent period, when the in-period checks ended, record of what was seen)."""
    async with WsClient(url_spend, key=GATEWAY_KEY, model=MODEL) as client:
        assert client.connected, client.result.to_dict()
        await client.wait_for(lambda r: r.events_of("session.created"), 10)
        await client.send({"type": "response.create", "event_id": "evt_spend"})
        await client.wait_for(lambda r: r.events_of("response.done"), 10)
        spent_at = time.time()
        if on_spent:
            await on_spent()
        # Still this period: over budget.
        await client.send({"type": "response.create", "event_id": "evt_over"})
        await client.wait_for(lambda r: quota_errors(r), 5)
        refused = await asyncio.to_thread(run_ws_session, url_check, key=GATEWAY_KEY, model=MODEL,
                                          duration=0.3)
        checked_at = time.time()
        # The next period: a new session is admitted (before anything is spent in it), and the
        # same live session's response.create runs again.
        await asyncio.sleep(period_of(checked_at) + PERIOD - time.time() + 0.3)
        admitted = await asyncio.to_thread(run_ws_session, url_check, key=GATEWAY_KEY, model=MODEL,
                                           duration=0.3)
        await client.send({"type": "response.create", "event_id": "evt_next"})
        await client.wait_for(lambda r: len(r.events_of("response.done")) >= 2, 10)
        result = client.result
    return spent_at, checked_at, result, refused, admitted


def run_scenario(url_spend, url_check, on_spent=None):
    """Runs the scenario from the start of a period; once more if the machine was so slow that
    the in-period checks ended after the period (then they proved nothing)."""
    for _ in range(3):
        to_next_period()
        spent_at, checked_at, result, refused, admitted = asyncio.run(
            over_then_through(url_spend, url_check, on_spent))
        if period_of(spent_at) == period_of(checked_at):
            return spent_at, result, refused, admitted
    raise AssertionError("the machine never ran the in-period checks within one 4 s period")


def period_config(fake_upstream):
    config = default_gateway_config(fake_upstream)
    config["auth"]["keys"][0].update(budget_tokens=50, budget_duration=f"{PERIOD}s")
    return config


def test_a_key_over_budget_in_one_period_goes_through_in_the_next(fake_upstream, gateway_factory,
                                                                  tmp_path):
    log = tmp_path / "usage.jsonl"
    config = period_config(fake_upstream)
    config["usage"] = {"log": str(log)}
    gw = gateway_factory(config)
    spent_at, result, refused, admitted = run_scenario(gw.url, gw.url)
    over = quota_errors(result)
    assert len(over) == 1 and over[0]["error"].get("event_id") == "evt_over", result.event_types()
    assert refused.handshake_status == 429, refused.to_dict()
    assert refused.error_code == "insufficient_quota", refused.to_dict()
    assert len(result.events_of("response.done")) == 2, result.event_types()
    assert admitted.status == 101, admitted.to_dict()
    # The log keeps every turn (two, in two periods); the budget counted only the period's.
    records = [r for r in read_usage_log(log) if r["key"] == "team-a"]
    assert len(records) >= 2 and all(r["total_tokens"] == TURN_TOKENS for r in records), records
    assert len({period_of(r["time"]) for r in records}) >= 2, records
    gw.stop()
    # A restart replays only the current period: a new period has nothing spent.
    to_next_period()
    again = gateway_factory(config)
    fresh = run_ws_session(again.url, key=GATEWAY_KEY, model=MODEL, duration=0.3)
    assert fresh.status == 101, fresh.to_dict()


def test_a_restart_within_the_period_stays_over_budget(fake_upstream, gateway_factory, tmp_path):
    # The replay counts the current period's records: a turn just logged still counts.
    log = tmp_path / "usage.jsonl"
    config = period_config(fake_upstream)
    config["auth"]["keys"][0]["budget_duration"] = "1h"
    log.write_text(json.dumps({"time": time.time() - 3600 * 3, "kind": "response",
                               "key": "team-a", "model": MODEL, "total_tokens": 5000}) + "\n")
    config["usage"] = {"log": str(log)}
    gw = gateway_factory(config)
    ok = run_ws_session(gw.url, key=GATEWAY_KEY, model=MODEL, duration=0.3)
    assert ok.status == 101, "a past period's spend does not count"
    with open(log, "a") as f:
        f.write(json.dumps({"time": time.time(), "kind": "response", "key": "team-a",
                            "model": MODEL, "total_tokens": 60}) + "\n")
    gw.stop()
    again = gateway_factory(config)
    refused = run_ws_session(again.url, key=GATEWAY_KEY, model=MODEL, duration=0.3)
    assert refused.handshake_status == 429, refused.to_dict()


def test_cluster_budget_periods_are_one_redis_hash_per_period(fake_upstream, gateway_factory,
                                                               redis):  # noqa: F811
    config = period_config(fake_upstream)
    a = gateway_factory(config, env=cluster_env(redis, "gw-a"))
    b = gateway_factory(config, env=cluster_env(redis, "gw-b"))
    assert wait_until(lambda: redis_up(a) and redis_up(b), 10), "the instances never reached Redis"
    seen = {}

    async def counted_in_redis():
        # The turn spent on A is in the period's hash before B is asked.
        hash_name = f"rtgw:budget:team-a:{period_of(time.time())}"
        ok = await asyncio.to_thread(
            wait_until, lambda: int(redis.command("HGET", hash_name, "tokens") or 0) >= TURN_TOKENS,
            2)
        seen["hash"] = hash_name
        seen["counted"] = ok
        seen["ttl"] = redis.command("PTTL", hash_name)

    spent_at, result, refused, admitted = run_scenario(a.url, b.url, counted_in_redis)
    assert seen["counted"], f"{seen['hash']} never held the turn"
    assert 0 < seen["ttl"] <= (2 * PERIOD + 60) * 1000, seen
    assert refused.handshake_status == 429, refused.to_dict()  # B refuses: the shared counter
    assert refused.error_code == "insufficient_quota", refused.to_dict()
    assert len(result.events_of("response.done")) == 2, result.event_types()
    assert admitted.status == 101, admitted.to_dict()
    # Without a period the key's hash would be rtgw:budget:team-a: none was written.
    assert redis.command("EXISTS", "rtgw:budget:team-a") == 0


def test_the_postgres_budget_replay_counts_only_the_current_period(pg, fake_upstream,  # noqa: F811
                                                                    gateway_factory):
    from test_ledger import insert_history, ledger_gateway
    server, db = pg
    keys = [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"], "budget_tokens": 50,
             "budget_duration": "1h"}]
    first = ledger_gateway(gateway_factory, fake_upstream, server, db, keys=keys)  # the schema
    assert first.stop() == 0
    now = time.time()
    insert_history(server, db, int(now) - 3 * 3600, "team-a", MODEL, 1.0, tokens=5000)
    second = ledger_gateway(gateway_factory, fake_upstream, server, db, keys=keys)
    # The row is in the table, but not in the key's current period.
    assert "0 record(s) of 0 key(s) replayed from PostgreSQL" in second.stderr(), second.stderr()
    admitted = run_ws_session(second.url, key=GATEWAY_KEY, model=MODEL, duration=0.3)
    assert admitted.status == 101, "a past period's rows do not count"
    assert second.stop() == 0
    # A row of this period (60 tokens) does.
    insert_history(server, db, int(time.time()), "team-a", MODEL, 0.1, tokens=30)
    third = ledger_gateway(gateway_factory, fake_upstream, server, db, keys=keys)
    refused = run_ws_session(third.url, key=GATEWAY_KEY, model=MODEL, duration=0.3)
    assert refused.handshake_status == 429, refused.to_dict()
