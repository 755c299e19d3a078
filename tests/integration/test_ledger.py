"""The usage ledger in PostgreSQL (``usage.postgres_url``): every usage record lands in the table
``realtime_usage`` exactly once, a database outage buffers (bounded) and then flushes, overflow is
counted and logged, and budgets are replayed from the table at start-up.

A real server: Debian's PostgreSQL 15 (``/usr/lib/postgresql/15/bin``) in a temporary directory,
on a free loopback TCP port, trust authentication, started and stopped with ``pg_ctl``. PostgreSQL
refuses to run as root: as root (CI), the directory belongs to the ``postgres`` user and
initdb/pg_ctl run through ``runuser -u postgres --``. The tests query with ``psql``.
"""
from __future__ import annotations

import asyncio
import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import GATEWAY_KEY, default_gateway_config
from peers.aiortc_client import AiortcCall
from peers.common import free_port, http_request, post_offer
from peers.ws_client import run_ws_session
from test_calls import aiortc_offer

PG_BIN = "/usr/lib/postgresql/15/bin"
PSQL = "/usr/bin/psql"
MODEL = "gpt-realtime"


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, on 127.0.0.1:port."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="rtgw-pg-")
        os.chmod(self.root, 0o755)  # the postgres user must reach its data directory
        self.data = os.path.join(self.root, "data")
        self.log = os.path.join(self.root, "server.log")
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run([f"{PG_BIN}/initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                   "-E", "UTF8", "--locale=C", "--no-sync"])
        self.databases = 0

    def _run(self, args, check=True, timeout=60):
        if self.as_root:
            args = ["runuser", "-u", "postgres", "--", *args]
        return subprocess.run(args, check=check, timeout=timeout, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)

    def start(self):
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        out = self._run([f"{PG_BIN}/pg_ctl", "-D", self.data, "-l", self.log, "-o", options,
                         "-w", "-t", "60", "start"], check=False, timeout=90)
        assert out.returncode == 0, out.stdout + self.server_log()

    def stop(self, mode="fast"):
        self._run([f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"],
                  check=False, timeout=90)

    def server_log(self):
        try:
            with open(self.log) as f:
                return f.read()[-5000:]
        except OSError:
            return ""

    def url(self, db):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def psql(self, db, sql):
        out = subprocess.run([PSQL, "-X", "-q", "-At", "-h", "127.0.0.1", "-p", str(self.port),
                              "-U", "postgres", "-d", db, "-c", sql],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def new_database(self):
        self.databases += 1
        name = f"usage_{self.databases}"
        self.psql("postgres", f"CREATE DATABASE {name}")
        return name

    def destroy(self):
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_server():
    for tool in (f"{PG_BIN}/initdb", f"{PG_BIN}/pg_ctl", PSQL):
        if not os.access(tool, os.X_OK):
            pytest.skip(f"{tool} is missing (apt-get install postgresql postgresql-client)")
    server = PostgresServer()
    atexit.register(server.destroy)  # also when the run is interrupted before the teardown
    server.start()
    yield server
    server.destroy()
    atexit.unregister(server.destroy)


@pytest.fixture
def pg(postgres_server):
    """The module's server, running, and a fresh database for this test: (server, db name)."""
    if not _running(postgres_server):
        postgres_server.start()
    return postgres_server, postgres_server.new_database()


def _running(server):
    out = subprocess.run([f"{PG_BIN}/pg_isready", "-h", "127.0.0.1", "-p", str(server.port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out.returncode == 0


def ledger_gateway(gateway_factory, fake_upstream, server, db, keys=None, env=None, **usage):
    config = default_gateway_config(fake_upstream)
    if keys:
        config["auth"]["keys"] = keys
    config["usage"] = {"log": "usage.jsonl", "postgres_url": server.url(db), **usage}
    # Generous: start-up is slow on a loaded 2-core CI machine.
    return gateway_factory(config, env=env, health_timeout=30)


def rows(server, db, where="true"):
    text = server.psql(db, "SELECT coalesce(json_agg(r ORDER BY r.id), '[]') FROM "
                           f"(SELECT *, extract(epoch FROM time) AS epoch FROM realtime_usage "
                           f"WHERE {where}) r")
    return json.loads(text)


def jsonl(gw):
    path = os.path.join(gw.workdir, "usage.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def metric(gw, name, labels=""):
    body = http_request("GET", gw.url + "/metrics").body
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", body, re.M)
    return float(match.group(1)) if match else None


def ws_turns(gw, n):
    """A WebSocket session with n response.create turns; returns its response.done events."""
    result = run_ws_session(gw.url, key=GATEWAY_KEY, model=MODEL,
                            send_events=[{"type": "response.create"}] * n,
                            until=lambda r: len(r.events_of("response.done")) >= n, duration=20)
    done = result.events_of("response.done")
    assert len(done) == n, result.event_types()
    return done


def assert_row_matches_record(row, rec):
    """Every column against the JSONL line of the same record."""
    for field in ("kind", "call_id", "transport", "key", "model", "worker", "status",
                  "usage_present", "response_id", "item_id", "service_tier", "input_tokens",
                  "output_tokens", "total_tokens", "transcription_seconds", "cost_usd"):
        assert row[field] == rec[field], (field, row, rec)
    details = rec["input_token_details"]
    for name in ("text", "audio", "image"):
        assert row[f"input_{name}_tokens"] == details[f"{name}_tokens"], (name, row, rec)
        assert row[f"input_cached_{name}_tokens"] == (
            details["cached_tokens_details"][f"{name}_tokens"]
            if "cached_tokens_details" in details else None), (name, row, rec)
    assert row["input_cached_tokens"] == details["cached_tokens"], (row, rec)
    for name in ("text", "audio"):
        assert row[f"output_{name}_tokens"] == rec["output_token_details"][f"{name}_tokens"]
    if rec["first_token_latency_ms"] is None:
        assert row["first_token_latency_ms"] is None, row
    else:
        assert abs(row["first_token_latency_ms"] - rec["first_token_latency_ms"]) < 1e-6
    assert abs(row["turn_duration_ms"] - rec["turn_duration_ms"]) < 1e-6, (row, rec)
    assert abs(float(row["epoch"]) - rec["time"]) < 0.001, (row, rec)
    assert row["instance"], row


# --------------------------------------------------------------------------- tests

def test_a_calls_turns_land_once_each_with_every_column(pg, fake_upstream, gateway_factory):
    server, db = pg
    # The URL from the environment (RTGW_USAGE_POSTGRES_URL) this time.
    config = default_gateway_config(fake_upstream)
    config["usage"] = {"log": "usage.jsonl"}
    gw = gateway_factory(config, env={"RTGW_USAGE_POSTGRES_URL": server.url(db)},
                         health_timeout=30)
    assert "writing usage records to PostgreSQL" in gw.stderr()

    async def two_turns():
        call = AiortcCall(gw.url, GATEWAY_KEY, model=MODEL)
        result = await call.connect()
        assert result.status == 201, result.error or result.body
        try:
            assert await call.wait_for(lambda r: r.events_of("session.created"), 10)
            call.send({"type": "response.create", "response": {"service_tier": "priority"}})
            assert await call.wait_for(lambda r: r.events_of("response.done"), 10)
            call.send({"type": "input_audio_buffer.commit"})  # a token-billed transcription
            assert await call.wait_for(lambda r: r.events_of(
                "conversation.item.input_audio_transcription.completed"), 10)
        finally:
            await call.close("hangup")
        return call.result
    result = asyncio.run(two_turns())

    records = wait_until(lambda: len(jsonl(gw)) == 2 and jsonl(gw), 10, "two usage log lines")
    landed = wait_until(lambda: len(rows(server, db)) >= 2 and rows(server, db), 15,
                        "two rows in realtime_usage")
    assert len(landed) == 2, landed
    by_kind = {r["kind"]: r for r in landed}
    assert set(by_kind) == {"response", "transcription"}, landed
    assert by_kind["response"]["call_id"] == result.call_id
    assert by_kind["response"]["item_id"] is None and by_kind["transcription"]["response_id"] is None
    assert by_kind["response"]["response_id"] == result.events_of("response.done")[0]["response"]["id"]
    for rec in records:
        assert_row_matches_record(by_kind[rec["kind"]], rec)
    assert metric(gw, "rtgw_usage_ledger_up") == 1
    assert metric(gw, "rtgw_usage_ledger_written_total") == 2
    assert metric(gw, "rtgw_usage_ledger_buffered_records") == 0
    # The schema: a unique index on (call_id, response_id, item_id) with NULLs as ''.
    index = server.psql(db, "SELECT indexdef FROM pg_indexes WHERE indexname = 'realtime_usage_turn'")
    assert "UNIQUE" in index and "COALESCE(response_id" in index and "COALESCE(item_id" in index


def test_the_same_record_offered_twice_lands_once(pg):
    """The writer itself (unit-tests' PostgresLedgerLive.*) against this server: a record offered
    twice in one batch, again in a later batch and again by a second writer lands once."""
    server, db = pg
    binary = os.environ.get("RTGW_UNIT_TESTS") or os.path.join(
        os.path.dirname(os.path.dirname(os.environ.get("RTGW_BINARY", ""))), "tests", "unit-tests")
    if not os.access(binary, os.X_OK):
        pytest.skip("the unit-tests binary was not found (RTGW_UNIT_TESTS)")
    out = subprocess.run([binary, "--gtest_filter=PostgresLedgerLive.*"],
                         env={**os.environ, "RTGW_TEST_POSTGRES_URL": server.url(db)},
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert out.returncode == 0, out.stdout
    assert "[  PASSED  ] 1 test" in out.stdout and "SKIPPED" not in out.stdout, out.stdout
    assert int(server.psql(db, "SELECT count(*) FROM realtime_usage")) == 3


def test_an_outage_buffers_then_flushes(pg, fake_upstream, gateway_factory):
    server, db = pg
    gw = ledger_gateway(gateway_factory, fake_upstream, server, db)
    ws_turns(gw, 1)
    wait_until(lambda: len(rows(server, db)) == 1, 15, "the first row")

    server.stop("fast")
    try:
        ws_turns(gw, 3)
        wait_until(lambda: len(jsonl(gw)) == 4, 10, "four usage log lines")
        wait_until(lambda: metric(gw, "rtgw_usage_ledger_up") == 0, 15, "rtgw_usage_ledger_up 0")
        assert metric(gw, "rtgw_usage_ledger_buffered_records") == 3
        assert "usage ledger: PostgreSQL" in gw.stderr() and "is unavailable" in gw.stderr()
        time.sleep(1.5)  # reconnect attempts fail meanwhile: logged once per outage
        assert gw.stderr().count("is unavailable") == 1, gw.stderr()
    finally:
        server.start()
    wait_until(lambda: metric(gw, "rtgw_usage_ledger_buffered_records") == 0, 30,
               "the buffer to flush")
    assert metric(gw, "rtgw_usage_ledger_up") == 1
    landed = rows(server, db)
    assert sorted(r["response_id"] for r in landed) == sorted(r["response_id"] for r in jsonl(gw))
    assert len(landed) == 4  # all there, none twice
    assert metric(gw, "rtgw_usage_ledger_dropped_total", '{reason="buffer_full"}') == 0
    assert "is back: writing 3 buffered record(s)" in gw.stderr(), gw.stderr()


def test_overflow_past_the_bound_is_counted_and_logged(pg, fake_upstream, gateway_factory,
                                                       tmp_path):
    server, db = pg
    log = str(tmp_path / "overflow.jsonl")
    gw = ledger_gateway(gateway_factory, fake_upstream, server, db, postgres_buffer_records=2,
                        log=log)
    wait_until(lambda: metric(gw, "rtgw_usage_ledger_up") == 1, 15, "the ledger up")
    server.stop("fast")
    try:
        ws_turns(gw, 1)  # noticed down at this first write
        wait_until(lambda: metric(gw, "rtgw_usage_ledger_up") == 0, 15, "rtgw_usage_ledger_up 0")
        ws_turns(gw, 4)  # 5 records, room for 2
        # The JSONL log keeps every record.
        wait_until(lambda: len(jsonl_at(log)) == 5, 10, "five usage log lines")
        assert metric(gw, "rtgw_usage_ledger_buffered_records") == 2
        assert metric(gw, "rtgw_usage_ledger_dropped_total", '{reason="buffer_full"}') == 3
        assert gw.stderr().count("buffer full (2 records)") == 1, gw.stderr()
    finally:
        server.start()
    wait_until(lambda: metric(gw, "rtgw_usage_ledger_buffered_records") == 0, 30,
               "the buffer to flush")
    assert len(rows(server, db)) == 2
    wait_until(lambda: "3 record(s) were dropped while the buffer was full" in gw.stderr(), 5,
               "the overflow's count in the log")
    # A later record lands; the replay watermark still stays before the dropped ones...
    ws_turns(gw, 1)
    wait_until(lambda: len(rows(server, db)) == 3, 15, "the later record")
    assert gw.stop() == 0
    # ... so the next start-up finds them in the log and writes them: every line once.
    again = ledger_gateway(gateway_factory, fake_upstream, server, db, log=log,
                           postgres_timeout_seconds=20)
    assert "3 were missing there and written" in again.stderr(), again.stderr()
    assert sorted(r["record_id"] for r in rows(server, db)) == sorted(
        line["record_id"] for line in jsonl_at(log))


def test_budgets_are_replayed_from_the_table(pg, fake_upstream, gateway_factory):
    server, db = pg
    keys = [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"], "budget_tokens": 50}]
    first = ledger_gateway(gateway_factory, fake_upstream, server, db, keys=keys)
    ws_turns(first, 1)  # 57 tokens: over the budget
    wait_until(lambda: len(jsonl(first)) == 1, 10, "the usage log line")
    assert first.stop() == 0  # SIGTERM: the ledger flushes before exit
    assert "every record is in PostgreSQL" in first.stderr(), first.stderr()
    assert len(rows(server, db)) == 1

    # A new gateway, a fresh usage log (nothing to replay there), the same database.
    second = ledger_gateway(gateway_factory, fake_upstream, server, db, keys=keys)
    assert jsonl(second) == []
    assert "1 record(s) of 1 key(s) replayed from PostgreSQL" in second.stderr(), second.stderr()
    reply = post_offer(second.url, GATEWAY_KEY, aiortc_offer(), model=MODEL)
    assert reply.status == 429 and reply.json()["error"]["code"] == "insufficient_quota", reply.body


def test_check_config_validates_and_masks_the_url(tmp_path):
    binary = os.environ.get("RTGW_BINARY")
    if not binary:
        pytest.skip("RTGW_BINARY is not set")
    base = {"models": [{"name": "echo", "workers": [{"provider": "echo"}]}]}

    def check(usage):
        path = tmp_path / "config.json"
        path.write_text(json.dumps({**base, "usage": usage}))
        return subprocess.run([binary, "--config", str(path), "--check-config"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=30)
    ok = check({"postgres_url": "postgresql://gw:hunter22@db.example.com/usage"})
    assert ok.returncode == 0, ok.stdout
    assert "postgresql://gw:***@db.example.com/usage" in ok.stdout and "hunter22" not in ok.stdout
    bad = check({"postgres_url": "postgresql://gw:hunter22@db.example.com/usage?colour=blue"})
    assert bad.returncode != 0 and "$.usage.postgres_url" in bad.stdout, bad.stdout
    assert "hunter22" not in bad.stdout, bad.stdout


def test_database_down_at_start_serves_from_jsonl_then_merges(pg, fake_upstream,
                                                              gateway_factory):
    server, db = pg
    keys = [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"], "budget_tokens": 50}]
    first = ledger_gateway(gateway_factory, fake_upstream, server, db, keys=keys)
    ws_turns(first, 1)  # 57 tokens: over the budget
    wait_until(lambda: len(rows(server, db)) == 1, 15, "the row")
    assert first.stop() == 0
    assert len(rows(server, db)) == 1

    server.stop("fast")
    try:
        # Start-up waits postgres_timeout_seconds for the replay, then serves from the (fresh,
        # empty) JSONL log's totals: the key is not blocked yet.
        second = ledger_gateway(gateway_factory, fake_upstream, server, db, keys=keys,
                                postgres_timeout_seconds=1)
        assert "did not answer within 1 s" in second.stderr(), second.stderr()
        reply = post_offer(second.url, GATEWAY_KEY, aiortc_offer(), model=MODEL)
        assert reply.status == 201, reply.body
    finally:
        server.start()
    # The replay comes in when the writer connects: the key is blocked from then on.
    wait_until(lambda: "budgets merged with the totals of 1 key(s) from PostgreSQL"
               in second.stderr(), 30, "the late replay")
    reply = post_offer(second.url, GATEWAY_KEY, aiortc_offer(), model=MODEL)
    assert reply.status == 429 and reply.json()["error"]["code"] == "insufficient_quota", reply.body


def test_shutdown_flushes_the_buffer_with_a_bounded_wait(pg, fake_upstream, gateway_factory):
    server, db = pg
    server.stop("fast")
    try:
        # The database stays down: SIGTERM waits postgres_timeout_seconds, then says what it
        # could not write, and exits 0.
        bounded = ledger_gateway(gateway_factory, fake_upstream, server, db,
                                 postgres_timeout_seconds=2)
        ws_turns(bounded, 1)
        wait_until(lambda: len(jsonl(bounded)) == 1, 10, "the usage log line")
        started = time.monotonic()
        assert bounded.stop(timeout=30) == 0
        assert time.monotonic() - started < 20
        assert "1 record(s) not written to PostgreSQL" in bounded.stderr(), bounded.stderr()
    finally:
        server.start()

    # The database comes back during the shutdown wait: the buffer is written, then exit.
    flushing = ledger_gateway(gateway_factory, fake_upstream, server, db,
                              postgres_timeout_seconds=60)
    server.stop("fast")
    try:
        ws_turns(flushing, 1)
        wait_until(lambda: len(jsonl(flushing)) == 1, 10, "the usage log line")
        wait_until(lambda: metric(flushing, "rtgw_usage_ledger_up") == 0, 15, "the outage seen")
        flushing.proc.send_signal(signal.SIGTERM)
        time.sleep(1)
        assert flushing.running()  # waiting for the database
    finally:
        server.start()
    assert flushing.proc.wait(60) == 0
    assert "every record is in PostgreSQL" in flushing.stderr(), flushing.stderr()
    landed = rows(server, db)
    assert [r["response_id"] for r in landed] == [jsonl(flushing)[0]["response_id"]], landed


# --------------------------------------------------------------------------- GET /v1/usage

UNPRICED = "unpriced-realtime"
PRICING = {"per_million_tokens": {"text_input": 4.0, "audio_input": 32.0, "text_output": 16.0,
                                  "audio_output": 64.0}}
# The fake upstream's turn: 37 input tokens (12 text, 25 audio) and 20 output (5 text, 15 audio).
TURN_USD = (12 * 4 + 25 * 32 + 5 * 16 + 15 * 64) / 1e6  # 0.001888
TEAM_B_KEY = "sk-team-b-0000002"
ADMIN_KEY = "sk-ops-admin-0001"
REPORT_KEYS = [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"]},
               {"name": "team-b", "key": TEAM_B_KEY, "models": ["*"]},
               {"name": "ops", "key": ADMIN_KEY, "models": ["*"], "admin": True}]


def report_gateway(gateway_factory, fake_upstream, server, db, log, **usage):
    """A gateway with a priced model and an unpriced one, the report keys, the shared database
    and its own usage log (log None: none)."""
    config = default_gateway_config(fake_upstream)
    priced = config["models"][0]
    priced["pricing"] = PRICING
    config["models"].append({"name": UNPRICED, "upstream_model": "gpt-realtime",
                             "workers": priced["workers"]})
    config["auth"]["keys"] = REPORT_KEYS
    config["usage"] = {"postgres_url": server.url(db), **usage}
    if log:
        config["usage"]["log"] = log
    return gateway_factory(config, health_timeout=30)


def turns_on(gw, key, model, n):
    result = run_ws_session(gw.url, key=key, model=model,
                            send_events=[{"type": "response.create"}] * n,
                            until=lambda r: len(r.events_of("response.done")) >= n, duration=20)
    assert len(result.events_of("response.done")) == n, result.event_types()


def insert_history(server, db, time_, key, model, cost, tokens=10):
    """A row as another instance (or an earlier run) wrote it, at a fixed time."""
    cost_sql = "NULL" if cost is None else repr(cost)
    server.psql(db, (
        "INSERT INTO realtime_usage (time, instance, kind, call_id, transport, key, model, worker, "
        "response_id, status, usage_present, input_tokens, output_tokens, total_tokens, "
        "input_text_tokens, input_audio_tokens, input_image_tokens, input_cached_tokens, "
        "output_text_tokens, output_audio_tokens, turn_duration_ms, transcription_seconds, "
        f"cost_usd) VALUES (to_timestamp({time_}), 'gw-old', 'response', 'rtc_old_{time_}_{model}', "
        f"'webrtc', '{key}', '{model}', 'w', 'resp_old', 'completed', true, {tokens}, {tokens}, "
        f"{2 * tokens}, {tokens}, 0, 0, 0, {tokens}, 0, 100, 0, {cost_sql})"))


def report(gw, key, query=""):
    reply = http_request("GET", gw.url + "/v1/usage" + query,
                         headers={"Authorization": f"Bearer {key}"})
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["object"] == "list", body
    return {(r["key"], r["model"]): r for r in body["data"]}


def close_to(a, b):
    return a is not None and abs(a - b) < 1e-12


def test_usage_report_sums_every_instances_turns_from_the_table(pg, fake_upstream,
                                                                gateway_factory, tmp_path):
    server, db = pg
    # Two instances sharing the database: A with its own usage log, B with none.
    a = report_gateway(gateway_factory, fake_upstream, server, db, str(tmp_path / "a.jsonl"))
    b = report_gateway(gateway_factory, fake_upstream, server, db, None)
    # History: team-a at 1000 (priced) and 2000 (unpriced), team-b at 1500.
    insert_history(server, db, 1000, "team-a", MODEL, 0.5)
    insert_history(server, db, 1500, "team-b", MODEL, 0.25)
    insert_history(server, db, 2000, "team-a", MODEL, None)

    turns_on(a, GATEWAY_KEY, MODEL, 1)
    turns_on(a, GATEWAY_KEY, UNPRICED, 1)
    wait_until(lambda: len(rows(server, db)) == 5, 15, "A's two rows")
    mid = time.time()
    time.sleep(0.05)
    turns_on(b, GATEWAY_KEY, MODEL, 2)
    turns_on(b, TEAM_B_KEY, MODEL, 1)
    wait_until(lambda: len(rows(server, db)) == 8, 15, "B's three rows")

    # Either instance answers with everyone's turns (B has no usage log at all).
    for gw in (a, b):
        every = report(gw, ADMIN_KEY)
        assert set(every) == {("team-a", MODEL), ("team-a", UNPRICED), ("team-b", MODEL)}, every
        mixed = every[("team-a", MODEL)]  # 3 live priced turns, 1 priced and 1 unpriced old one
        assert mixed["turns"] == 5 and mixed["unpriced_turns"] == 1, mixed
        assert mixed["input_tokens"] == 3 * 37 + 20 and mixed["output_tokens"] == 3 * 20 + 20
        assert mixed["total_tokens"] == 3 * 57 + 40 and mixed["transcription_seconds"] == 0
        assert close_to(mixed["cost_usd"], 0.5 + 3 * TURN_USD), mixed
        unpriced = every[("team-a", UNPRICED)]
        assert unpriced["turns"] == 1 and unpriced["cost_usd"] is None, unpriced
        assert unpriced["unpriced_turns"] == 1 and unpriced["total_tokens"] == 57
        team_b = every[("team-b", MODEL)]
        assert team_b["turns"] == 2 and close_to(team_b["cost_usd"], 0.25 + TURN_USD), team_b
        assert team_b["unpriced_turns"] == 0 and team_b["total_tokens"] == 20 + 57
        # The same JSON shape as the JSONL report, ordered by key and model.
        body = http_request("GET", gw.url + "/v1/usage",
                            headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()
        assert [(r["key"], r["model"]) for r in body["data"]] == sorted(every)
        assert set(body["data"][0]) == {"key", "model", "turns", "input_tokens", "output_tokens",
                                        "total_tokens", "transcription_seconds", "cost_usd",
                                        "unpriced_turns"}

    # A key sees only its own turns (whatever it asks); an admin one key's with ?key=.
    assert set(report(b, TEAM_B_KEY)) == {("team-b", MODEL)}
    assert set(report(a, TEAM_B_KEY, "?key=team-a")) == {("team-b", MODEL)}
    assert set(report(a, GATEWAY_KEY)) == {("team-a", MODEL), ("team-a", UNPRICED)}
    assert set(report(b, ADMIN_KEY, "?key=team-b")) == {("team-b", MODEL)}
    assert http_request("GET", b.url + "/v1/usage").status == 401

    # since (inclusive) and until (exclusive) on the row's time.
    window = report(a, ADMIN_KEY, "?since=1000&until=2000")
    assert {k: (r["turns"], r["cost_usd"]) for k, r in window.items()} == {
        ("team-a", MODEL): (1, 0.5), ("team-b", MODEL): (1, 0.25)}, window
    old_unpriced = report(b, GATEWAY_KEY, "?since=2000&until=2001")[("team-a", MODEL)]
    assert old_unpriced["turns"] == 1 and old_unpriced["cost_usd"] is None, old_unpriced
    assert report(a, ADMIN_KEY, "?until=1000") == {}
    # B's live turns only: after `mid`.
    later = report(a, ADMIN_KEY, f"?since={mid}")
    assert {k: r["turns"] for k, r in later.items()} == {("team-a", MODEL): 2,
                                                          ("team-b", MODEL): 1}, later
    assert close_to(later[("team-a", MODEL)]["cost_usd"], 2 * TURN_USD)
    # A's usage log still has only A's turns (the report did not come from it).
    assert len(jsonl_at(str(tmp_path / "a.jsonl"))) == 2


def jsonl_at(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_usage_report_says_503_while_the_database_is_down(pg, fake_upstream, gateway_factory,
                                                          tmp_path):
    server, db = pg
    gw = report_gateway(gateway_factory, fake_upstream, server, db, str(tmp_path / "a.jsonl"))
    turns_on(gw, GATEWAY_KEY, MODEL, 1)
    # A turn just metered is in this instance's own report (its record is written first).
    assert wait_until(lambda: report(gw, GATEWAY_KEY).get(("team-a", MODEL)), 10,
                      "the turn in the report")["turns"] == 1

    server.stop("fast")
    try:
        # The first report finds the connection gone; the next one finds the ledger down.
        for _ in range(2):
            started = time.monotonic()
            reply = http_request("GET", gw.url + "/v1/usage",
                                 headers={"Authorization": f"Bearer {GATEWAY_KEY}"})
            assert time.monotonic() - started < 5  # at once, not after a reconnection
            assert reply.status == 503, reply.body
            error = reply.json()["error"]
            assert error["type"] == "server_error" and error["code"] == "usage_store_unavailable"
            assert error["message"], error
        assert metric(gw, "rtgw_usage_ledger_up") == 0
        # Calls go on meanwhile; their records wait in the buffer.
        turns_on(gw, GATEWAY_KEY, MODEL, 1)
    finally:
        server.start()
    wait_until(lambda: metric(gw, "rtgw_usage_ledger_buffered_records") == 0
               and metric(gw, "rtgw_usage_ledger_up") == 1, 30, "the buffer to flush")
    back = report(gw, GATEWAY_KEY)[("team-a", MODEL)]
    assert back["turns"] == 2 and close_to(back["cost_usd"], 2 * TURN_USD), back


# --------------------------------------------------------------------------- a database that hangs

def postgres_pids(server):
    """The postmaster and its children (backends, checkpointer, walwriter...)."""
    with open(os.path.join(server.data, "postmaster.pid")) as f:
        master = int(f.readline())
    pids = [master]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == master:
            pids.append(int(entry))
    return pids


class frozen:
    """SIGSTOP every PostgreSQL process (a server that hangs: the kernel still accepts and
    acknowledges, nothing answers); SIGCONT on the way out, whatever happened."""

    def __init__(self, server):
        self.server = server

    def __enter__(self):
        self.pids = postgres_pids(self.server)
        for pid in self.pids:
            os.kill(pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        for pid in set(self.pids) | set(postgres_pids(self.server)):
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


def usage_request(gw, timeout=30):
    started = time.monotonic()
    reply = http_request("GET", gw.url + "/v1/usage",
                         headers={"Authorization": f"Bearer {GATEWAY_KEY}"}, timeout=timeout)
    return reply, time.monotonic() - started


def test_a_hung_database_answers_503_reads_down_and_recovers(pg, fake_upstream, gateway_factory):
    server, db = pg
    gw = ledger_gateway(gateway_factory, fake_upstream, server, db, postgres_timeout_seconds=2)
    ws_turns(gw, 1)
    wait_until(lambda: len(rows(server, db)) == 1, 15, "the first row")
    assert usage_request(gw)[0].status == 200
    with frozen(server):
        # Each report is answered 503 by its deadline (2 s), never held for ever nor refused
        # with 429 because earlier ones still hold the slots.
        for _ in range(4):
            reply, took = usage_request(gw)
            assert reply.status == 503, (reply.status, reply.error, reply.body)
            assert reply.json()["error"]["code"] == "usage_store_unavailable", reply.body
            assert took < 6, took
        # The writer notices too (a statement past its deadline, or the idle probe).
        wait_until(lambda: metric(gw, "rtgw_usage_ledger_up") == 0, 15, "rtgw_usage_ledger_up 0")
        # Calls go on; their records wait in the buffer.
        ws_turns(gw, 1)
        wait_until(lambda: len(jsonl(gw)) == 2, 10, "the second log line")
        assert metric(gw, "rtgw_usage_ledger_buffered_records") == 1
        reply, took = usage_request(gw)
        assert reply.status == 503 and took < 6, (reply.status, took)
    # Back: the buffered record is written, the metric reads 1, reports work again.
    wait_until(lambda: metric(gw, "rtgw_usage_ledger_up") == 1
               and metric(gw, "rtgw_usage_ledger_buffered_records") == 0, 30, "the flush")
    landed = rows(server, db)
    assert sorted(r["record_id"] for r in landed) == sorted(r["record_id"] for r in jsonl(gw))
    assert len(landed) == 2
    assert wait_until(lambda: usage_request(gw)[0].status == 200, 15, "a report again")


def test_shutdown_is_bounded_while_the_database_hangs(pg, fake_upstream, gateway_factory,
                                                      tmp_path):
    server, db = pg
    log = str(tmp_path / "hang.jsonl")

    def start(log_path=log, **usage):
        config = default_gateway_config(fake_upstream)
        config["usage"] = {"log": log_path, "postgres_url": server.url(db), **usage}
        return gateway_factory(config, health_timeout=30)

    gw = start(postgres_timeout_seconds=2)
    patient = start(str(tmp_path / "patient.jsonl"), postgres_timeout_seconds=60)
    ws_turns(gw, 1)
    wait_until(lambda: len(rows(server, db)) == 1, 15, "the first row")
    with frozen(server):
        ws_turns(gw, 1)
        wait_until(lambda: len(jsonl_at(log)) == 2, 10, "the second log line")
        # SIGTERM: no call is live, so the drain is immediate; the ledger's flush gets its 2 s
        # and gives up (old: stuck in PQcancel for ever).
        started = time.monotonic()
        assert gw.stop(timeout=30) == 0
        assert time.monotonic() - started < 10, time.monotonic() - started
        assert "1 record(s) not written to PostgreSQL" in gw.stderr(), gw.stderr()

        # A longer flush wait (60 s), cut short by a second signal: exits at once.
        ws_turns(patient, 1)
        patient.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "shutting down" in patient.stderr(), 10, "the drain")
        time.sleep(1)
        assert patient.running()  # flushing to a database that does not answer
        started = time.monotonic()
        patient.proc.send_signal(signal.SIGTERM)
        assert patient.proc.wait(10) == 1
        assert time.monotonic() - started < 3
        assert "another signal during shutdown" in patient.stderr(), patient.stderr()
    # The record buffered at the first shutdown is in the log only (or in the table too: the
    # server, resumed, may still commit the INSERT the writer abandoned). The next start replays
    # the log into the table: each record once.
    again = start(postgres_timeout_seconds=20)
    assert "replayed from PostgreSQL for budgets" in again.stderr(), again.stderr()
    ids = [r["record_id"] for r in rows(server, db)]
    assert len(ids) == len(set(ids)) == 3, ids  # gw's two, patient's one
    assert {line["record_id"] for line in jsonl_at(log)} <= set(ids), ids
    assert again.stop() == 0


# --------------------------------------------------------------------------- the log's tail

def test_records_buffered_at_a_kill_reach_the_table_once_and_count_once(pg, fake_upstream,
                                                                        gateway_factory,
                                                                        tmp_path):
    server, db = pg
    log = str(tmp_path / "killed.jsonl")

    def start(budget, **usage):
        config = default_gateway_config(fake_upstream)
        config["auth"]["keys"] = [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"],
                                   "budget_tokens": budget}]
        config["usage"] = {"log": log, "postgres_url": server.url(db), **usage}
        return gateway_factory(config, health_timeout=30)

    # Two turns land in the table; then the database stops and five more are buffered when the
    # gateway is killed.
    gw = start(100000, postgres_timeout_seconds=20)
    ws_turns(gw, 2)
    wait_until(lambda: len(rows(server, db)) == 2, 15, "the first rows")
    server.stop("fast")
    try:
        ws_turns(gw, 5)
        wait_until(lambda: len(jsonl_at(log)) == 7, 10, "the log lines")
        assert metric(gw, "rtgw_usage_ledger_buffered_records") == 5
        gw.proc.kill()
        gw.proc.wait(10)
    finally:
        server.start()
    # Another instance's turns, in the table only: 3 x 20 tokens.
    for i in range(3):
        insert_history(server, db, 1700000000 + i, "team-a", MODEL, None)
    lines = jsonl_at(log)
    assert len({line["record_id"] for line in lines}) == 7 and all(
        line["record_id"].startswith("ur_") for line in lines), lines
    log_tokens = sum(line["total_tokens"] for line in lines)  # 7 x 57 = 399
    every = log_tokens + 60  # each record once: 459 (max() of the two said 399)

    # Budget one above the true total: the key is not blocked (no record counted twice)...
    second = start(every + 1, postgres_timeout_seconds=20)
    assert "replayed from PostgreSQL for budgets" in second.stderr(), second.stderr()
    landed = rows(server, db, "record_id IS NOT NULL")
    assert sorted(r["record_id"] for r in landed) == sorted(line["record_id"] for line in lines)
    for line in lines:
        assert_row_matches_record(
            next(r for r in landed if r["record_id"] == line["record_id"]), line)
    reply = post_offer(second.url, GATEWAY_KEY, aiortc_offer(), model=MODEL)
    assert reply.status == 201, reply.body
    assert second.stop() == 0

    # ... and at the true total it is (every record counted).
    third = start(every, postgres_timeout_seconds=20)
    assert "replayed from PostgreSQL for budgets" in third.stderr(), third.stderr()
    reply = post_offer(third.url, GATEWAY_KEY, aiortc_offer(), model=MODEL)
    assert reply.status == 429 and reply.json()["error"]["code"] == "insufficient_quota", reply.body
    assert len(rows(server, db)) == 7 + 3  # the replays added nothing twice


def test_records_buffered_at_a_shutdown_with_the_database_down_reach_the_table(
        pg, fake_upstream, gateway_factory, tmp_path):
    server, db = pg
    log = str(tmp_path / "down.jsonl")

    def start(**usage):
        config = default_gateway_config(fake_upstream)
        config["usage"] = {"log": log, "postgres_url": server.url(db), **usage}
        return gateway_factory(config, health_timeout=30)

    server.stop("fast")
    try:
        gw = start(postgres_timeout_seconds=1)
        ws_turns(gw, 2)
        wait_until(lambda: len(jsonl_at(log)) == 2, 10, "the log lines")
        assert gw.stop(timeout=30) == 0
        assert "2 record(s) not written to PostgreSQL" in gw.stderr(), gw.stderr()
    finally:
        server.start()
    again = start(postgres_timeout_seconds=20)
    assert "2 record(s) from before start-up (from byte 0)" in again.stderr(), again.stderr()
    assert "2 were missing there and written" in again.stderr(), again.stderr()
    landed = rows(server, db)
    assert sorted(r["record_id"] for r in landed) == sorted(
        line["record_id"] for line in jsonl_at(log))
    assert again.stop() == 0
    # A restart with nothing new adds nothing, and starts reading where the table is complete
    # (the watermark beside the log): no line is read again.
    size = os.path.getsize(log)
    with open(log + ".ledger-mark") as f:
        assert f.read().split()[1] == str(size)
    third = start(postgres_timeout_seconds=20)
    assert f"0 record(s) from before start-up (from byte {size})" in third.stderr(), \
        third.stderr()
    assert len(rows(server, db)) == 2


def test_the_watermark_speaks_for_its_database_only(pg, fake_upstream, gateway_factory,
                                                    tmp_path):
    """A mark says "these lines are in the table" of one database: pointed at another (a new or
    moved database), the gateway replays the whole log into it instead of skipping the lines that
    only the old one has, and its budgets count them."""
    server, first_db = pg
    log = str(tmp_path / "moved.jsonl")

    def start(db, budget=100000):
        config = default_gateway_config(fake_upstream)
        config["auth"]["keys"] = [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"],
                                   "budget_tokens": budget}]
        config["usage"] = {"log": log, "postgres_url": server.url(db),
                           "postgres_timeout_seconds": 20}
        return gateway_factory(config, health_timeout=30)

    gw = start(first_db)
    ws_turns(gw, 2)
    wait_until(lambda: len(rows(server, first_db)) == 2, 15, "the first rows")
    assert gw.stop() == 0
    size = os.path.getsize(log)
    with open(log + ".ledger-mark") as f:
        assert f.read().split()[1] == str(size)

    second_db = server.new_database()
    tokens = sum(line["total_tokens"] for line in jsonl_at(log))
    again = start(second_db, budget=tokens)
    assert "2 record(s) from before start-up (from byte 0)" in again.stderr(), again.stderr()
    assert sorted(r["record_id"] for r in rows(server, second_db)) == sorted(
        line["record_id"] for line in jsonl_at(log))
    # The budget counts the log's records (the new table has them now): at its total, blocked.
    reply = post_offer(again.url, GATEWAY_KEY, aiortc_offer(), model=MODEL)
    assert reply.status == 429 and reply.json()["error"]["code"] == "insufficient_quota", reply.body
    assert again.stop() == 0


def test_a_log_truncated_in_place_is_replayed_from_its_start(pg, fake_upstream, gateway_factory,
                                                             tmp_path):
    """logrotate's copytruncate empties the log under the running gateway (same inode), which
    writes on from byte 0: a mark made for the old content must not make the next start skip the
    new lines it covers, or records buffered at the shutdown never reach the table."""
    server, db = pg
    log = str(tmp_path / "truncated.jsonl")
    mark = log + ".ledger-mark"

    def start():
        config = default_gateway_config(fake_upstream)
        config["usage"] = {"log": log, "postgres_url": server.url(db),
                           "postgres_timeout_seconds": 2}
        return gateway_factory(config, health_timeout=30)

    gw = start()
    ws_turns(gw, 3)
    wait_until(lambda: len(rows(server, db)) == 3, 15, "the first rows")
    wait_until(lambda: os.path.exists(mark) and int(open(mark).read().split()[1]) > 0, 15,
               "the watermark")
    os.truncate(log, 0)
    server.stop("fast")
    try:
        ws_turns(gw, 5)
        wait_until(lambda: len(jsonl_at(log)) == 5, 10, "the new log lines")
        assert gw.stop(timeout=30) == 0
    finally:
        server.start()
    with open(mark) as f:
        covered = int(f.read().split()[1])
    assert os.path.getsize(log) >= covered  # the old mark covers some of the new lines
    again = start()
    wait_until(lambda: "replayed from PostgreSQL for budgets" in again.stderr(), 30,
               "the replay")
    assert "5 record(s) from before start-up (from byte 0)" in again.stderr(), again.stderr()
    landed = {r["record_id"] for r in rows(server, db)}
    assert {line["record_id"] for line in jsonl_at(log)} <= landed
    assert len(landed) == 3 + 5
    assert again.stop() == 0


def test_a_log_line_the_table_refuses_counts_once_from_the_log(pg, fake_upstream,
                                                                gateway_factory, tmp_path):
    server, db = pg
    log = tmp_path / "refused.jsonl"
    base = {"input_tokens": 37, "output_tokens": 20, "total_tokens": 57, "kind": "response",
            "transport": "websocket", "key": "team-a", "model": MODEL, "worker": "w",
            "status": "completed", "usage_present": True, "item_id": None, "cost_usd": None,
            "turn_duration_ms": 100.0, "transcription_seconds": 0.0}
    good = {**base, "record_id": "ur_" + "1" * 32, "time": 1700000000.5, "call_id": "ws_good",
            "response_id": "resp_good"}
    # A time PostgreSQL cannot store (to_timestamp overflows: SQLSTATE 22008): refused for its
    # data, so it is in the log only.
    bad = {**base, "record_id": "ur_" + "2" * 32, "time": 1e300, "call_id": "ws_bad",
           "response_id": "resp_bad", "total_tokens": 100}
    log.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")

    def start(budget):
        config = default_gateway_config(fake_upstream)
        config["auth"]["keys"] = [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"],
                                   "budget_tokens": budget}]
        config["usage"] = {"log": str(log), "postgres_url": server.url(db),
                           "postgres_timeout_seconds": 20}
        return gateway_factory(config, health_timeout=30)

    # 157 tokens in all: 57 in the table, 100 in the log only. Budget 158: not blocked (the
    # good line is not counted twice, once from the log and once from the table)...
    first = start(158)
    assert "PostgreSQL refused 1 record(s) of the usage log" in first.stderr(), first.stderr()
    assert [r["record_id"] for r in rows(server, db)] == [good["record_id"]]
    reply = post_offer(first.url, GATEWAY_KEY, aiortc_offer(), model=MODEL)
    assert reply.status == 201, reply.body
    assert first.stop() == 0
    # ... budget 157: blocked (the refused line counts). The watermark stayed before it, so this
    # start reads it again and counts it again, once.
    second = start(157)
    assert "PostgreSQL refused 1 record(s) of the usage log" in second.stderr(), second.stderr()
    reply = post_offer(second.url, GATEWAY_KEY, aiortc_offer(), model=MODEL)
    assert reply.status == 429 and reply.json()["error"]["code"] == "insufficient_quota", reply.body
