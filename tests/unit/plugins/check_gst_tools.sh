#!/bin/sh
# SPDX-License-Identifier: MIT
# The loadable rtevents plugin works with the stock GStreamer tools: gst-inspect-1.0 lists the
# elements with their properties, and gst-launch-1.0 runs the example file and prints decisions
# and turns. Environment (set by meson.build): GST_PLUGIN_PATH, GST_INSPECT, GST_LAUNCH, EXAMPLES.
set -eu
fail() { echo "FAIL: $*" >&2; exit 1; }

out=$("$GST_INSPECT" rtevents) || fail "gst-inspect-1.0 rtevents"
for e in rteventsrc rteventfilter rtusagemeter rteventparse rtpptrewrite rtpforward; do
  echo "$out" | grep -q "$e" || fail "plugin does not list $e"
done

# gst-inspect-1.0 prints a property as "  NAME<spaces>: description" and an enum value as
# "(N): NAME<spaces>- description": match those shapes, not words any description may contain.
has_property() { echo "$2" | grep -Eq -- "^  $1 +: [^ ]"; }
has_enum_value() { echo "$2" | grep -Eq -- "^ +\([0-9]+\): $1 +- [^ ]"; }
# Both pads (sink and src templates) carry the event caps as their only capability.
has_event_caps() {
  [ "$(echo "$1" | grep -Ec '^ {6}application/x-realtime-event$')" -eq 2 ]
}

out=$("$GST_INSPECT" rteventfilter) || fail "gst-inspect-1.0 rteventfilter"
for p in policy key-name model budget-exceeded events-in events-blocked events-filtered; do
  has_property "$p" "$out" || fail "rteventfilter: property $p missing or undocumented"
done
has_event_caps "$out" || fail "rteventfilter: pads without application/x-realtime-event caps"
# The checks can fail: a property that does not exist is not found.
if has_property no-such-property "$out"; then fail "has_property matches anything"; fi

out=$("$GST_INSPECT" rtusagemeter) || fail "gst-inspect-1.0 rtusagemeter"
for p in direction peer turns input-tokens-total output-tokens-total; do
  has_property "$p" "$out" || fail "rtusagemeter: property $p missing or undocumented"
done
for v in upstream client; do
  has_enum_value "$v" "$out" || fail "rtusagemeter: direction value $v missing"
done
if has_enum_value sideways "$out"; then fail "has_enum_value matches anything"; fi
has_event_caps "$out" || fail "rtusagemeter: pads without application/x-realtime-event caps"

# rtpforward: what rtpbin and webrtcbin set or read on a jitterbuffer, and the RTCP request pad.
out=$("$GST_INSPECT" rtpforward) || fail "gst-inspect-1.0 rtpforward"
for p in latency do-retransmission stats; do
  has_property "$p" "$out" || fail "rtpforward: property $p missing or undocumented"
done
echo "$out" | grep -q "sink_rtcp" || fail "rtpforward: no sink_rtcp pad template"

out=$("$GST_LAUNCH" -m filesrc location="$EXAMPLES/events.jsonl" ! rteventparse ! \
      rteventfilter key-name=team-b model=gpt-realtime-mini \
        policy="$(cat "$EXAMPLES/policy.json")" ! \
      rtusagemeter ! fakesink 2>&1) || fail "gst-launch-1.0 failed: $out"
echo "$out"
count() { echo "$out" | grep -c -F -- "$1" || true; }
expect() {  # expect COUNT TEXT WHAT
  [ "$(count "$2")" -eq "$1" ] || fail "expected $1 x $3 ($2)"
}
expect 4 'rtevent-decision' "rtevent-decision messages"
expect 1 'action=(string)block, reason=(string)service_tier, rule=(string)"service_tier\[0\]", event-type=(string)response.create, event-id=(string)evt_c04, tier=(string)priority, model=(string)gpt-realtime' \
  "fallback block after the session.update model switch"
expect 1 'action=(string)filter, reason=(string)service_tier, rule=(string)"service_tier\[1\]"' \
  "flex filter"
expect 1 'reason=(string)denied_event, rule=(string)"deny_client_events\[0\]"' "denied event"
expect 1 'reason=(string)too_large, rule=(string)max_event_bytes' "too-large event"
expect 2 'rtusage-turn' "rtusage-turn messages"
expect 1 'rtusage-turn, response-id=(string)resp_001, status=(string)completed, usage-present=(boolean)true, input-tokens=(gint64)141, output-tokens=(gint64)112, total-tokens=(gint64)253' \
  "usage of the first turn"
expect 1 'Got EOS from element "pipeline0"' "EOS"
echo "OK"
