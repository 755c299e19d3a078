// A realtime session through the gateway with the official `openai` npm SDK's WebSocket client
// (`openai/realtime/ws`), exactly as an app would talk to OpenAI: session.created, a
// session.update, a response; prints what it saw as one JSON line.
//   node openai_sdk_realtime_ws.mjs BASE_URL KEY MODEL
// With `call:<call_id>` instead of MODEL it is the SDK's sideband socket on a live WebRTC call
// (`callID`): it asks for a response and waits for it.
// The SDK always dials wss://. A test gateway on plain HTTP gets a plain TCP connection under it;
// with RTGW_SDK_TLS=1 the SDK's own TLS connection is used (the gateway serving HTTPS, its CA in
// NODE_EXTRA_CA_CERTS).
import net from "node:net";
import OpenAI from "openai";
import { OpenAIRealtimeWS } from "openai/realtime/ws";

const [baseURL, apiKey, target] = process.argv.slice(2);
const sideband = target.startsWith("call:");
const client = new OpenAI({ apiKey, baseURL: baseURL.replace(/\/$/, "") + "/v1", maxRetries: 0 });
const seen = [];
const result = { ok: false, url: null, types: seen, errors: [], close_code: null, usage: null };
const plainTcp = (options) => net.connect({ host: options.host, port: options.port });
const connection = sideband ? { callID: target.slice(5) } : { model: target };
const transport = process.env.RTGW_SDK_TLS === "1" ? {} : { createConnection: plainTcp };
const rt = new OpenAIRealtimeWS({ ...connection, options: transport }, client);
result.url = String(rt.url);
const finish = () => {
  console.log(JSON.stringify(result));
  process.exit(result.ok ? 0 : 1);
};
const timer = setTimeout(() => { result.errors.push("timeout"); finish(); }, 15000);
rt.on("event", (event) => seen.push(event.type));
rt.on("error", (err) => result.errors.push(String(err?.message ?? err)));
rt.socket.on("open", () => {
  if (sideband) rt.send({ type: "response.create", response: { instructions: "from the sideband" } });
});
rt.on("session.created", () => {
  rt.send({ type: "session.update", session: { type: "realtime", instructions: "from the SDK" } });
  rt.send({ type: "response.create" });
});
rt.on("response.done", (event) => {
  result.usage = event.response?.usage ?? null;
  result.ok = true;
  rt.close({ code: 1000, reason: "done" });
});
rt.socket.on("close", (code) => {
  result.close_code = code;
  clearTimeout(timer);
  finish();
});
