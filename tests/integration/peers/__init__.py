"""Test peers for the Realtime Gateway integration tests.

Modules:
  common          shared helpers: OpenAI-style signalling (POST of an offer), CallResult,
                  tone/receiver audio helpers for aiortc, free ports, event ids.
  fake_upstream   a fake OpenAI-Realtime-compatible worker (aiohttp + aiortc answerer).
  aiortc_client   an aiortc caller (the gateway's "OpenAI WebRTC client").
  browser_client  headless Chromium caller driven through selenium.
  wrtc_client     Python wrapper around wrtc_client.mjs (libwebrtc through @roamhq/wrtc).
  werift_client   Python wrapper around werift_client.mjs (werift, pure TypeScript WebRTC).
  node_client     what the two node wrappers share: npm install check, one bounded node run.

Everything here must run under Debian's /usr/bin/python3 (python3-aiortc, python3-aiohttp,
python3-selenium come from apt and are not visible to other Python installs).
"""
