"""Debugging a live call: admin-only call list and pipeline graph, graph dumps on state changes."""
from __future__ import annotations

import asyncio
import os

from conftest import GATEWAY_KEY, default_gateway_config
from peers.aiortc_client import AiortcCall
from peers.common import http_request

ADMIN = "sk-admin-debug"


def test_debug_calls_and_pipeline_graph(fake_upstream, gateway_factory, tmp_path):
    config = default_gateway_config(fake_upstream)
    config["auth"]["keys"].append({"name": "ops", "key": ADMIN, "models": ["*"], "admin": True})
    dot_dir = tmp_path / "dots"
    dot_dir.mkdir()
    gw = gateway_factory(config, env={"GST_DEBUG_DUMP_DOT_DIR": str(dot_dir)})

    def get(path, key):
        return http_request("GET", gw.url + path, headers={"Authorization": f"Bearer {key}"})

    async def scenario():
        call = AiortcCall(gw.url, GATEWAY_KEY, model="gpt-realtime")
        await call.connect()
        assert call.connected
        await asyncio.sleep(1.0)
        listing = get("/debug/calls", ADMIN)
        assert listing.status == 200
        assert [c["id"] for c in listing.json()["data"]] == [call.result.call_id]
        assert get("/debug/calls", GATEWAY_KEY).status == 403
        dot = get(f"/debug/calls/{call.result.call_id}/pipeline.dot", ADMIN)
        assert dot.status == 200 and dot.body.startswith("digraph")
        for name in ("client", "upstream", "rteventfilter", "rtusagemeter", "rtpptrewrite"):
            assert name.lower() in dot.body.lower(), name
        assert get(f"/debug/calls/{call.result.call_id}/pipeline.dot", GATEWAY_KEY).status == 403
        await call.close()
        return call.result.call_id
    call_id = asyncio.run(scenario())
    gw.stop()
    dumped = sorted(os.listdir(dot_dir))
    for moment in ("answered", "connected", "ended"):
        assert [f for f in dumped if f.endswith(f"{call_id}-{moment}.dot")], dumped


def test_readme_level_pipeline_extension(fake_upstream, gateway_factory, tmp_path):
    """The README's example: a tee + opusdec + level on the client's audio, by editing a copy of
    pipelines/call.pipeline. The call still relays, and level's messages reach the call's log."""
    from peers.aiortc_client import run_call_sync
    src = os.path.join(os.path.dirname(__file__), "..", "..", "pipelines", "call.pipeline")
    text = open(src).read()
    chain = "identity name=client_audio_in silent=true ! rtpptrewrite name=upstream_audio_out"
    assert chain in text
    text = text.replace(chain, "identity name=client_audio_in silent=true ! tee name=t"
                        " ! rtpptrewrite name=upstream_audio_out\n"
                        "  t. ! queue leaky=downstream ! rtpopusdepay ! opusdec"
                        " ! level post-messages=true ! fakesink sync=false async=false", 1)
    pipeline = tmp_path / "level.pipeline"
    pipeline.write_text(text)
    gw = gateway_factory(default_gateway_config(fake_upstream), args=["--pipeline", str(pipeline)],
                         env={"G_MESSAGES_DEBUG": "all"})
    result = run_call_sync(gw.url, GATEWAY_KEY, model="gpt-realtime",
                           send_events=[{"type": "test.echo", "payload": "l"}], duration=2.0)
    assert result.status == 201 and result.events_of("test.echoed")
    assert result.audio_frames_received > 40
    gw.stop()
    logs = gw.stderr() + open(gw.stdout_path).read()  # GLib prints debug lines on stdout
    assert f"[{result.call_id}] level" in logs
