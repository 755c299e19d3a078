// The part the node test peers (wrtc_client.mjs, werift_client.mjs) share: the command line, the
// result line (the fields of peers.common.CallResult), the signalling (POST of the offer, answer,
// Location, hangup), the data-channel event bookkeeping and the bounded run with its final
// print/exit. Each client keeps only its stack's peer connection and audio source/sink.
//
// Command line: node CLIENT_client.mjs BASE_URL KEY MODEL DURATION_S [options]
//   MODEL may be "" (no ?model=).
//   --session JSON         send multipart sdp + session instead of application/sdp
//   --events JSON_ARRAY    events to send once the channel is open (strings sent verbatim);
//                          default: [{"type":"test.echo","payload":"CLIENT-hello"}]
//   --close MODE           close (pc.close) | hangup (POST {location}/hangup, then close) |
//                          leave (exit without closing the peer connection)
//   --http-timeout S       signalling timeout (default 15)

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function parseArgs(argv, script, defaultEvents) {
  const [baseUrl, key, model, duration, ...rest] = argv;
  if (!baseUrl || duration === undefined) {
    console.error(`usage: ${script} BASE_URL KEY MODEL DURATION_S [options]`);
    process.exit(64);
  }
  const opts = { baseUrl, key, model, duration: Number(duration), session: null,
                 events: defaultEvents, close: "close", httpTimeout: 15 };
  for (let i = 0; i < rest.length; i += 2) {
    const [flag, value] = [rest[i], rest[i + 1]];
    if (flag === "--session") opts.session = JSON.parse(value);
    else if (flag === "--events") opts.events = JSON.parse(value);
    else if (flag === "--close") opts.close = value;
    else if (flag === "--http-timeout") opts.httpTimeout = Number(value);
    else { console.error(`unknown option ${flag}`); process.exit(64); }
  }
  return opts;
}

// One call of client CLIENT: parses process.argv, builds the result object (resultFields override
// the defaults, e.g. which audio counters start at 0 rather than null) and arms the watchdog.
export function createCall(client, resultFields = {}) {
  const started = Date.now();
  const opts = parseArgs(process.argv.slice(2), `${client}_client.mjs`,
                         [{ type: "test.echo", payload: `${client}-hello` }]);
  const result = {
    client, status: null, headers: {}, location: null, call_id: null,
    offer_sdp: "", answer_sdp: "", error_body: null, error: null, channel_opened: false,
    raw_events: [], sent_events: [], audio_frames_received: 0, audio_frames_sent: 0,
    audio_packets_received: null, audio_packets_sent: null, connection_states: [],
    remote_closed: false,
    hangup_status: null, elapsed: 0,
    ...resultFields,
  };

  const call = {
    opts, result,
    closing: false, // set once this side starts ending the call
    dc: null,

    finish(code) {
      result.elapsed = (Date.now() - started) / 1000;
      process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(code));
    },

    // ------------------------------------------------------------ data channel bookkeeping
    createChannel(pc) {
      call.dc = pc.createDataChannel("oai-events");
      return call.dc;
    },
    send(raw) {
      try { call.dc.send(raw); result.sent_events.push(raw); }
      catch (e) { result.error = result.error || `send failed: ${e.message}`; }
    },
    channelOpened() {
      result.channel_opened = true;
      for (const ev of opts.events) call.send(typeof ev === "string" ? ev : JSON.stringify(ev));
    },
    channelClosed() { if (!call.closing) result.remote_closed = true; },
    messageReceived(data) {
      result.raw_events.push(typeof data === "string" ? data : Buffer.from(data).toString());
    },

    // ------------------------------------------------------------ the call itself
    // hooks: stats() reads the stack's stats into result, stopMedia() stops the audio source,
    // closePeer() closes the peer connection (not called for --close leave).
    run(pc, hooks) {
      runCall(call, pc, hooks)
        .catch((e) => { result.error = `client failed: ${e.stack || e}`; call.finish(1); });
    },
  };

  // Hard bound on the whole run, whatever happens.
  setTimeout(() => { result.error = result.error || "watchdog: run took too long"; call.finish(2); },
             (opts.duration + opts.httpTimeout + 20) * 1000).unref();
  return call;
}

async function waitGathering(pc, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (pc.iceGatheringState !== "complete" && Date.now() < deadline) await sleep(20);
}

function buildBody(pc, opts) {
  if (!opts.session) return { body: pc.localDescription.sdp, type: "application/sdp" };
  const form = new FormData();
  form.append("sdp", pc.localDescription.sdp);
  form.append("session", JSON.stringify(opts.session));
  return { body: form, type: null }; // fetch sets the multipart boundary
}

async function postOffer(pc, opts, result) {
  const url = new URL(opts.baseUrl.replace(/\/$/, "") + "/v1/realtime/calls");
  if (opts.model) url.searchParams.set("model", opts.model);
  const { body, type } = buildBody(pc, opts);
  const headers = {};
  if (opts.key) headers.Authorization = `Bearer ${opts.key}`;
  if (type) headers["Content-Type"] = type;
  try {
    const resp = await fetch(url, { method: "POST", headers, body,
                                    signal: AbortSignal.timeout(opts.httpTimeout * 1000) });
    result.status = resp.status;
    result.headers = Object.fromEntries(resp.headers);
    const text = await resp.text();
    if (resp.status === 201) {
      result.answer_sdp = text;
      result.location = resp.headers.get("location");
      if (result.location) result.call_id = result.location.replace(/\/$/, "").split("/").pop();
    } else {
      result.error_body = text;
    }
  } catch (e) {
    result.error = `POST failed: ${e.message}`;
  }
}

async function hangup(opts, result) {
  try {
    const hangupUrl = new URL(result.location + "/hangup", opts.baseUrl);
    const resp = await fetch(hangupUrl, { method: "POST",
      headers: opts.key ? { Authorization: `Bearer ${opts.key}` } : {},
      signal: AbortSignal.timeout(10000) });
    result.hangup_status = resp.status;
  } catch (e) { result.error = result.error || `hangup failed: ${e.message}`; }
}

async function runCall(call, pc, { stats, stopMedia, closePeer }) {
  const { opts, result } = call;
  await pc.setLocalDescription(await pc.createOffer());
  await waitGathering(pc, 5000);
  result.offer_sdp = pc.localDescription.sdp;

  await postOffer(pc, opts, result);
  if (result.status === 201) {
    try {
      await pc.setRemoteDescription({ type: "answer", sdp: result.answer_sdp });
      await sleep(opts.duration * 1000);
    } catch (e) {
      result.error = `setRemoteDescription failed: ${e.message}`;
    }
  }
  await stats();

  if (opts.close === "hangup" && result.location) await hangup(opts, result);
  call.closing = true;
  stopMedia();
  if (opts.close !== "leave") {
    await closePeer();
    await sleep(200); // let close_notify / SCTP abort leave before the process exits
  }
  call.finish(result.status === 201 && !result.error ? 0 : 1);
}
