"""Decodes an Ogg/Opus file with GStreamer and prints JSON: the seconds of audio decoded
(samples at 48 kHz) and the container's duration (the last page's granule position).

    /usr/bin/python3 ogg_opus_info.py FILE
"""
import json
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def info(path: str) -> dict:
    Gst.init(None)
    pipeline = Gst.parse_launch(
        "filesrc name=src ! oggdemux ! opusdec ! audio/x-raw,rate=48000 "
        "! fakesink name=sink sync=false signal-handoffs=true")
    pipeline.get_by_name("src").set_property("location", path)
    samples = [0]

    def on_handoff(_sink, buffer, pad):
        channels = pad.get_current_caps().get_structure(0).get_value("channels")
        samples[0] += buffer.get_size() // (2 * channels)  # S16LE

    pipeline.get_by_name("sink").connect("handoff", on_handoff)
    pipeline.set_state(Gst.State.PLAYING)
    message = pipeline.get_bus().timed_pop_filtered(
        30 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    ok, duration = pipeline.query_duration(Gst.Format.TIME)
    pipeline.set_state(Gst.State.NULL)
    if message is None or message.type == Gst.MessageType.ERROR:
        raise SystemExit(f"{path}: {message.parse_error() if message else 'no EOS in 30 s'}")
    return {"decoded_seconds": samples[0] / 48000.0,
            "duration_seconds": duration / Gst.SECOND if ok else None}


if __name__ == "__main__":
    print(json.dumps(info(sys.argv[1])))
