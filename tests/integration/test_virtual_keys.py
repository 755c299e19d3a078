"""Virtual keys in PostgreSQL and the /key/* admin API (SPEC "Run-time keys").

A real PostgreSQL (the ``pg`` fixture of test_ledger.py) and, for the cluster case, a real
redis-server (test_cluster.py's ``redis`` fixture). Each gateway runs with
``auth.key_store: "postgres"``; ``ops`` is the config's admin key, ``team-a`` a plain one.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import time

import pytest

from conftest import GATEWAY_KEY, default_gateway_config
from peers.aiortc_client import AiortcCall
from peers.common import http_request
from peers.ws_client import WsClient, run_ws, run_ws_session
from test_cluster import cluster_env, redis, redis_up  # noqa: F401  (the fixture)
from test_ledger import pg, postgres_server  # noqa: F401  (fixtures)
from test_reload import call_echo, echo, post_reload, write_config

MODEL = "gpt-realtime"
ADMIN_KEY = "sk-ops-admin-secret"


def store_config(fake_upstream, server, db, **auth):
    config = default_gateway_config(fake_upstream)
    config["auth"]["keys"].append({"name": "ops", "key": ADMIN_KEY, "models": ["*"],
                                   "admin": True})
    config["auth"].update({"key_store": "postgres", "key_store_url": server.url(db), **auth})
    return config


def admin(gw, method, route, body=None, key=ADMIN_KEY):
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = None if body is None else (body if isinstance(body, bytes) else
                                      json.dumps(body).encode())
    return http_request(method, gw.url + route, body=data, headers=headers, timeout=20)


def generate(gw, **fields):
    reply = admin(gw, "POST", "/key/generate", fields)
    assert reply.status == 200, reply.body
    return reply.json()


def status_with(gw, key):
    """GET /v1/models with `key`: the status (200, or 401 once the key is refused)."""
    return http_request("GET", gw.url + "/v1/models",
                        headers={"Authorization": f"Bearer {key}"}).status


def error_code(reply):
    return reply.json()["error"]["code"]


def ws_status(gw, key, model=MODEL):
    return run_ws_session(gw.url, key=key, model=model, duration=0.2).status


def wait_for(predicate, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


# --------------------------------------------------------------------------- tests

def test_generate_call_then_revoke_on_a_is_refused_on_b_within_1s_without_redis(
        pg, fake_upstream, gateway_factory):
    server, db = pg
    config = store_config(fake_upstream, server, db)
    a = gateway_factory(config, health_timeout=30)
    b = gateway_factory(config, health_timeout=30)
    made = generate(a, key_alias="cust-1", models=["gpt-realtime*"])
    key = made["key"]
    assert key.startswith("sk-rtgw-") and len(key) >= 8 + 43, made
    # Seen on B (its poll) and usable for a WebSocket session there.
    assert wait_for(lambda: status_with(b, key) == 200, 3), "B never saw the new key"
    assert ws_status(b, key) == 101
    revoked = admin(a, "POST", "/key/update", {"key_alias": "cust-1", "revoked": True})
    t0 = time.monotonic()
    assert revoked.status == 200, revoked.body
    assert revoked.json()["revoked"] is True
    assert status_with(a, key) == 401, "the writing instance applies the change at once"
    assert wait_for(lambda: status_with(b, key) == 401, 3)
    took = time.monotonic() - t0
    print(f"revoked on A, refused on B after {took:.3f} s (no Redis: B's poll)")
    assert took <= 1.0, f"B refused the revoked key only after {took:.2f} s"
    reply = run_ws_session(b.url, key=key, model=MODEL, duration=0.2)
    assert reply.status == 401 and reply.error_code == "invalid_api_key", reply.to_dict()


def test_delete_on_a_is_refused_on_b_within_1s_in_cluster_mode(
        pg, fake_upstream, gateway_factory, redis):  # noqa: F811
    server, db = pg
    config = store_config(fake_upstream, server, db)
    a = gateway_factory(config, env=cluster_env(redis, "gw-a"), health_timeout=30)
    b = gateway_factory(config, env=cluster_env(redis, "gw-b"), health_timeout=30)
    assert wait_for(lambda: redis_up(a) and redis_up(b), 10)
    key = generate(a, key_alias="cust-2")["key"]
    assert wait_for(lambda: status_with(b, key) == 200, 3)
    deleted = admin(a, "POST", "/key/delete", {"key_aliases": ["cust-2"]})
    t0 = time.monotonic()
    assert deleted.status == 200 and deleted.json() == {"deleted_key_aliases": ["cust-2"]}
    assert wait_for(lambda: status_with(b, key) == 401, 3)
    took = time.monotonic() - t0
    print(f"deleted on A, refused on B after {took:.3f} s (cluster mode)")
    assert took <= 1.0, f"B refused the deleted key only after {took:.2f} s"
    assert admin(b, "GET", "/key/info?key_alias=cust-2").status == 404


def test_key_is_shown_once_and_only_its_sha256_is_stored(pg, fake_upstream, gateway_factory):
    server, db = pg
    gw = gateway_factory(store_config(fake_upstream, server, db), health_timeout=30)
    made = generate(gw, key_alias="cust-3", metadata={"team": "blue"})
    key = made["key"]
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert server.psql(db, "SELECT key_hash FROM rtgw_virtual_keys WHERE key_alias = 'cust-3'") \
        == digest
    table = server.psql(db, "SELECT row_to_json(t)::text FROM rtgw_virtual_keys t")
    assert key not in table and key[8:] not in table
    info = admin(gw, "GET", "/key/info?key_alias=cust-3")
    assert info.status == 200 and "key" not in info.json(), info.body
    assert info.json()["metadata"] == {"team": "blue"}
    by_key = admin(gw, "GET", "/key/info?key=" + key)
    assert by_key.status == 200 and by_key.json()["key_alias"] == "cust-3"
    assert key not in info.body and digest not in info.body
    listed = admin(gw, "GET", "/key/list?page=1&size=10")
    assert listed.status == 200
    assert listed.json()["page"] == 1 and listed.json()["size"] == 10
    assert [k["key_alias"] for k in listed.json()["data"]] == ["cust-3"]
    assert key not in listed.body and digest not in listed.body
    # Regenerate: a new secret, the old one refused at once.
    new = admin(gw, "POST", "/key/regenerate", {"key_alias": "cust-3"})
    assert new.status == 200 and new.json()["key"] != key, new.body
    assert status_with(gw, key) == 401 and status_with(gw, new.json()["key"]) == 200
    assert gw.stderr().find(key) < 0 and gw.stderr().find(new.json()["key"]) < 0


def test_audit_table_has_every_change_and_no_secret(pg, fake_upstream, gateway_factory):
    server, db = pg
    gw = gateway_factory(store_config(fake_upstream, server, db), health_timeout=30)
    key = generate(gw, key_alias="cust-4", budget_usd=5)["key"]
    assert admin(gw, "POST", "/key/update", {"key": key, "budget_usd": 7}).status == 200
    regenerated = admin(gw, "POST", "/key/regenerate", {"key": key}).json()["key"]
    assert admin(gw, "POST", "/key/update", {"key_alias": "cust-4", "revoked": True}).status == 200
    assert admin(gw, "POST", "/key/delete", {"keys": [regenerated]}).status == 200
    rows = json.loads(server.psql(
        db, "SELECT json_agg(a ORDER BY id) FROM rtgw_key_audit a"))
    assert [r["action"] for r in rows] == ["generate", "update", "regenerate", "revoke", "delete"]
    assert all(r["actor"] == "ops" and r["key_alias"] == "cust-4" and r["at"] for r in rows)
    assert rows[0]["before"] is None and rows[0]["after"]["budget_usd"] == 5
    assert rows[1]["before"]["budget_usd"] == 5 and rows[1]["after"]["budget_usd"] == 7
    text = json.dumps(rows)
    for secret in (key, regenerated):
        assert secret not in text and secret[8:] not in text
        assert hashlib.sha256(secret.encode()).hexdigest() not in text
    assert "sk-rtgw-" not in text and ADMIN_KEY not in text


def test_expired_key_is_refused(pg, fake_upstream, gateway_factory):
    server, db = pg
    gw = gateway_factory(store_config(fake_upstream, server, db), health_timeout=30)
    past = generate(gw, key_alias="cust-5", expires_at=int(time.time()) - 10)["key"]
    assert status_with(gw, past) == 401
    soon = generate(gw, key_alias="cust-6", expires_at=int(time.time()) + 2)["key"]
    assert status_with(gw, soon) == 200
    assert wait_for(lambda: status_with(gw, soon) == 401, 6, step=0.2)
    reply = http_request("GET", gw.url + "/v1/models", headers={"Authorization": f"Bearer {soon}"})
    assert error_code(reply) == "invalid_api_key"


def test_models_allow_list_and_max_concurrent_calls_are_enforced(pg, fake_upstream,
                                                                  gateway_factory):
    server, db = pg
    gw = gateway_factory(store_config(fake_upstream, server, db), health_timeout=30)
    narrow = generate(gw, key_alias="cust-7", models=["other-*"])["key"]
    refused = run_ws_session(gw.url, key=narrow, model=MODEL, duration=0.2)
    assert refused.status == 403 and refused.error_code == "model_not_allowed", refused.to_dict()
    one = generate(gw, key_alias="cust-8", max_concurrent_calls=1)["key"]

    async def scenario():
        first = WsClient(gw.url, key=one, model=MODEL)
        await first.connect()
        try:
            assert first.connected, first.result.to_dict()
            second = await run_ws(gw.url, key=one, model=MODEL, duration=0.2)
            assert second.status == 429 and second.error_code == "too_many_calls", \
                second.to_dict()
        finally:
            await first.close(1000, "")
    asyncio.run(scenario())


def test_admin_api_refuses_non_admins_and_bad_bodies(pg, fake_upstream, gateway_factory):
    server, db = pg
    gw = gateway_factory(store_config(fake_upstream, server, db), health_timeout=30)
    assert admin(gw, "POST", "/key/generate", {}, key=GATEWAY_KEY).status == 403
    assert admin(gw, "GET", "/key/list", key=GATEWAY_KEY).status == 403
    assert admin(gw, "POST", "/key/generate", {}, key=None).status == 401
    virtual = generate(gw)["key"]
    assert generate(gw)["key_alias"].startswith("vk-")
    assert admin(gw, "GET", "/key/list", key=virtual).status == 403, "virtual keys are no admin"
    unknown = admin(gw, "POST", "/key/generate", {"key_alias": "x", "colour": "red"})
    assert unknown.status == 400 and "colour" in unknown.json()["error"]["message"]
    wrong = admin(gw, "POST", "/key/generate", {"max_concurrent_calls": "2"})
    assert wrong.status == 400 and "max_concurrent_calls" in wrong.json()["error"]["message"]
    assert admin(gw, "POST", "/key/generate", b"not json").status == 400
    clash = admin(gw, "POST", "/key/generate", {"key_alias": "team-a"})
    assert clash.status == 400 and error_code(clash) == "key_alias_exists"
    generate(gw, key_alias="cust-9")
    again = admin(gw, "POST", "/key/generate", {"key_alias": "cust-9"})
    assert again.status == 400 and error_code(again) == "key_alias_exists"
    missing = admin(gw, "POST", "/key/update", {"key_alias": "nobody", "budget_usd": 1})
    assert missing.status == 404 and error_code(missing) == "key_not_found"
    assert admin(gw, "GET", "/key/list?size=0").status == 400
    assert admin(gw, "GET", "/key/generate").status == 405


def test_without_a_key_store_the_admin_api_answers_501(fake_upstream, gateway_factory):
    config = default_gateway_config(fake_upstream)
    config["auth"]["keys"].append({"name": "ops", "key": ADMIN_KEY, "admin": True})
    gw = gateway_factory(config)
    for method, route in (("POST", "/key/generate"), ("GET", "/key/list"),
                          ("GET", "/key/info?key_alias=x"), ("POST", "/key/delete")):
        reply = admin(gw, method, route, {} if method == "POST" else None)
        assert reply.status == 501 and error_code(reply) == "key_store_not_configured", reply.body


def test_an_alias_clashing_with_a_config_key_is_a_start_up_error(pg, fake_upstream,
                                                                 gateway_factory):
    server, db = pg
    first = gateway_factory(store_config(fake_upstream, server, db), health_timeout=30)
    generate(first, key_alias="later-clash")
    first.stop()
    config = store_config(fake_upstream, server, db)
    config["auth"]["keys"].append({"name": "later-clash", "key": "sk-later-clash-1"})
    gw = gateway_factory(config, wait_healthy=False)
    assert gw.proc.wait(timeout=30) != 0
    assert "later-clash" in gw.stderr() and "config key" in gw.stderr(), gw.stderr()[-2000:]


def test_an_ek_token_of_a_revoked_key_no_longer_redeems(pg, fake_upstream, gateway_factory):
    server, db = pg
    gw = gateway_factory(store_config(fake_upstream, server, db), health_timeout=30)
    key = generate(gw, key_alias="cust-10")["key"]
    minted = http_request("POST", gw.url + "/v1/realtime/client_secrets",
                          body=json.dumps({"session": {"type": "realtime",
                                                       "model": MODEL}}).encode(),
                          headers={"Authorization": f"Bearer {key}",
                                   "Content-Type": "application/json"})
    assert minted.status == 200, minted.body
    token = minted.json()["value"]
    assert ws_status(gw, token) == 101
    assert admin(gw, "POST", "/key/update", {"key": key, "revoked": True}).status == 200
    reply = run_ws_session(gw.url, key=token, model=MODEL, duration=0.2)
    assert reply.status == 401 and reply.error_code == "invalid_api_key", reply.to_dict()


def test_a_live_session_of_a_revoked_key_ends_with_invalid_api_key(pg, fake_upstream,
                                                                   gateway_factory):
    server, db = pg
    gw = gateway_factory(store_config(fake_upstream, server, db), health_timeout=30)
    key = generate(gw, key_alias="cust-11")["key"]

    async def scenario():
        client = WsClient(gw.url, key=key, model=MODEL)
        await client.connect()
        assert client.connected
        await client.wait_for(lambda r: r.events_of("session.created"), 10)
        revoke = await asyncio.to_thread(admin, gw, "POST", "/key/update",
                                         {"key": key, "revoked": True})
        assert revoke.status == 200
        await client.wait_for(lambda r: r.closed or [
            e for e in r.events_of("error") if e.get("error", {}).get("code") ==
            "invalid_api_key"], 5)
        await client.close(1000, "")
        return client.result
    result = asyncio.run(scenario())
    errors = [e for e in result.events_of("error")
              if e.get("error", {}).get("code") == "invalid_api_key"]
    assert errors, result.event_types()


def test_a_database_outage_keeps_serving_the_last_copy(pg, fake_upstream, gateway_factory):
    server, db = pg
    gw = gateway_factory(store_config(fake_upstream, server, db), health_timeout=30)
    key = generate(gw, key_alias="cust-12")["key"]
    server.stop()
    try:
        # The refresh found the database gone (logged once), and the key still works.
        assert wait_for(lambda: "unavailable" in gw.stderr(), 10, step=0.1), gw.stderr()[-2000:]
        assert status_with(gw, key) == 200, "the mirror keeps authenticating"
        assert admin(gw, "GET", "/key/info?key_alias=cust-12").status == 200
        write = admin(gw, "POST", "/key/generate", {"key_alias": "cust-13"})
        assert write.status == 503 and error_code(write) == "key_store_unavailable", write.body
    finally:
        server.start()
    # Back: writes go through again, and the outage was logged once, without the password.
    assert wait_for(lambda: admin(gw, "POST", "/key/update",
                                  {"key_alias": "cust-12", "revoked": True}).status == 200, 15,
                    step=0.5)
    assert status_with(gw, key) == 401
    assert gw.stderr().count("unavailable: ") == 1, "one outage, logged once"


def test_a_virtual_keys_budget_is_enforced_by_its_alias(pg, fake_upstream, gateway_factory):
    server, db = pg
    gw = gateway_factory(store_config(fake_upstream, server, db), health_timeout=30)
    key = generate(gw, key_alias="cust-14", budget_tokens=50)["key"]
    # One turn of the fake upstream: 57 tokens, over the 50 budget.
    first = run_ws_session(gw.url, key=key, model=MODEL,
                           send_events=[{"type": "response.create"}],
                           until=lambda r: r.events_of("response.done"), duration=15)
    assert first.events_of("response.done"), first.event_types()
    refused = run_ws_session(gw.url, key=key, model=MODEL, duration=0.2)
    assert refused.status == 429 and refused.error_code == "insufficient_quota", \
        refused.to_dict()
    # Raised by the admin API: usable again at once.
    assert admin(gw, "POST", "/key/update", {"key": key, "budget_tokens": 1000}).status == 200
    assert ws_status(gw, key) == 101


# --------------------------------------------------------------------------- key effects

def invalid_key_errors(result):
    return [e for e in result.events_of("error")
            if e.get("error", {}).get("code") == "invalid_api_key"]


def call_state(gw, call_id):
    return admin(gw, "GET", f"/v1/realtime/calls/{call_id}").json()


@pytest.mark.parametrize("how", ["revoke", "delete"])
def test_a_live_call_of_a_revoked_or_deleted_key_gets_invalid_api_key_then_ends(
        how, pg, fake_upstream, gateway_factory):
    server, db = pg
    gw = gateway_factory(store_config(fake_upstream, server, db), health_timeout=30)
    key = generate(gw, key_alias="cust-call")["key"]

    async def scenario():
        call = AiortcCall(gw.url, key, model=MODEL)
        await call.connect()
        try:
            assert call.connected, call.result.error_body
            assert await call.wait_for(lambda r: r.channel_opened, 15)
            assert await call_echo(call, "before", timeout=15), call.result.event_types()
            assert call_state(gw, call.result.call_id)["state"] == "active"
            body = ({"key_alias": "cust-call", "revoked": True} if how == "revoke"
                    else {"key_aliases": ["cust-call"]})
            route = "/key/update" if how == "revoke" else "/key/delete"
            reply = await asyncio.to_thread(admin, gw, "POST", route, body)
            assert reply.status == 200, reply.body
            t0 = time.monotonic()
            # The error event first, on the call's own data channel ...
            assert await call.wait_for(lambda r: invalid_key_errors(r), 10), \
                call.result.event_types()
            # ... then the hang-up: the gateway's state says ended, and the peer sees it.
            ended = await asyncio.to_thread(
                wait_for, lambda: call_state(gw, call.result.call_id)["state"] == "ended", 10,
                0.1)
            state = call_state(gw, call.result.call_id)
            assert ended, state
            assert await call.wait_for(lambda r: r.remote_closed, 10), "the peer saw no hang-up"
            print(f"{how}: the call ended {time.monotonic() - t0:.3f} s after the answer")
            return state
        finally:
            await call.close()
    state = asyncio.run(scenario())
    assert "key_revoked" in json.dumps(state), state
    assert status_with(gw, key) == 401


def test_with_revoke_ends_calls_false_live_calls_run_on_and_new_requests_get_401(
        pg, fake_upstream, gateway_factory):
    server, db = pg
    gw = gateway_factory(store_config(fake_upstream, server, db, revoke_ends_calls=False),
                         health_timeout=30)
    key = generate(gw, key_alias="cust-on")["key"]

    async def scenario():
        session = WsClient(gw.url, key=key, model=MODEL)
        await session.connect()
        call = AiortcCall(gw.url, key, model=MODEL)
        await call.connect()
        try:
            assert session.connected, session.result.to_dict()
            assert call.connected, call.result.error_body
            assert await echo(session, "s-before", timeout=15)
            assert await call.wait_for(lambda r: r.channel_opened, 15)
            assert await call_echo(call, "c-before", timeout=15)
            reply = await asyncio.to_thread(admin, gw, "POST", "/key/update",
                                            {"key": key, "revoked": True})
            assert reply.status == 200, reply.body
            # New requests with the key are refused at once ...
            assert await asyncio.to_thread(status_with, gw, key) == 401
            refused = await run_ws(gw.url, key=key, model=MODEL, duration=0.2)
            assert refused.status == 401 and refused.error_code == "invalid_api_key", \
                refused.to_dict()
            late = AiortcCall(gw.url, key, model=MODEL)
            await late.connect()
            await late.close()
            assert late.result.status == 401, late.result.error_body
            # ... while the live ones still relay, both ways, after the revoke was applied.
            assert await echo(session, "s-after", timeout=15), session.result.to_dict()
            assert await call_echo(call, "c-after", timeout=15), call.result.event_types()
            assert not invalid_key_errors(session.result) and not invalid_key_errors(call.result)
            assert not session.result.closed and not call.result.remote_closed
            assert call_state(gw, call.result.call_id)["state"] == "active"
        finally:
            await session.close(1000, "")
            await call.close()
    asyncio.run(scenario())
    assert wait_for(lambda: "run on (auth.revoke_ends_calls" in gw.stderr(), 5), \
        gw.stderr()[-2000:]


def test_cluster_revoke_and_generate_reach_b_by_redis_within_1s_with_a_5s_cache(
        pg, fake_upstream, gateway_factory, redis):  # noqa: F811
    # key_cache_seconds 5: B's own poll reads the table every 2.5 s, so three keys each seen
    # (created, then revoked) on B within 1 s can only be the Redis invalidation's doing.
    server, db = pg
    config = store_config(fake_upstream, server, db, key_cache_seconds=5)
    a = gateway_factory(config, env=cluster_env(redis, "gw-a"), health_timeout=30)
    b = gateway_factory(config, env=cluster_env(redis, "gw-b"), health_timeout=30)
    assert wait_for(lambda: redis_up(a) and redis_up(b), 10)
    for i in range(3):
        alias = f"cust-redis-{i}"
        made = admin(a, "POST", "/key/generate", {"key_alias": alias})
        t0 = time.monotonic()
        assert made.status == 200, made.body
        key = made.json()["key"]
        assert wait_for(lambda: status_with(b, key) == 200, 3), "B never saw the new key"
        seen = time.monotonic() - t0
        revoked = admin(a, "POST", "/key/update", {"key_alias": alias, "revoked": True})
        t1 = time.monotonic()
        assert revoked.status == 200, revoked.body
        assert wait_for(lambda: status_with(b, key) == 401, 4), "B never refused the key"
        refused = time.monotonic() - t1
        print(f"{alias}: generated on A, authenticated on B after {seen:.3f} s; "
              f"revoked on A, refused on B after {refused:.3f} s (key_cache_seconds 5, Redis)")
        assert seen <= 1.0, f"B authenticated the new key only after {seen:.2f} s"
        assert refused <= 1.0, f"B refused the revoked key only after {refused:.2f} s"


def test_a_reload_keeps_virtual_keys_and_refuses_a_config_key_named_as_an_alias(
        pg, fake_upstream, gateway_factory):
    server, db = pg
    config = store_config(fake_upstream, server, db)
    gw = gateway_factory(config, health_timeout=30)
    key = generate(gw, key_alias="cust-reload")["key"]
    # A reload that adds a config key: the virtual key keeps working, and so does the new one.
    added = json.loads(json.dumps(config))
    added["auth"]["keys"].append({"name": "team-new", "key": "sk-team-new-1", "models": ["*"]})
    write_config(gw, added)
    reply = post_reload(gw, key=ADMIN_KEY)
    assert reply.status == 200, reply.body
    assert status_with(gw, key) == 200 and ws_status(gw, key) == 101
    assert status_with(gw, "sk-team-new-1") == 200
    # The reloaded file's names are config names now: no virtual key may take one.
    clash = admin(gw, "POST", "/key/generate", {"key_alias": "team-new"})
    assert clash.status == 400 and error_code(clash) == "key_alias_exists", clash.body
    # A config key named as a live virtual key's alias: refused as at start-up, nothing changes.
    named = json.loads(json.dumps(added))
    named["auth"]["keys"].append({"name": "cust-reload", "key": "sk-cust-reload-cfg-1"})
    write_config(gw, named)
    refused = post_reload(gw, key=ADMIN_KEY)
    assert refused.status == 400, refused.body
    error = refused.json()["error"]
    assert error["code"] == "invalid_config", error
    assert "cust-reload" in error["message"] and "virtual key" in error["message"], error
    assert "refused" in gw.stderr() and "cust-reload" in gw.stderr()
    assert status_with(gw, "sk-cust-reload-cfg-1") == 401, "the refused file took effect"
    assert status_with(gw, key) == 200 and ws_status(gw, key) == 101
    info = admin(gw, "GET", "/key/info?key_alias=cust-reload")
    assert info.status == 200 and info.json()["key_alias"] == "cust-reload", info.body
