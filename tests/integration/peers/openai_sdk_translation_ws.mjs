// A translation session through the gateway, as an app would run one against OpenAI: the official
// `openai` npm SDK mints the token (POST /v1/realtime/translations/client_secrets through the
// SDK's generic `client.post`: openai 6.49 types translation sessions but has no translations
// resource and its OpenAIRealtimeWS dials /v1/realtime only), then a `ws` WebSocket opens
// GET /v1/realtime/translations?model= with that token in the browsers' subprotocol, streams
// audio, asks the fake worker for a report (test.translate) and closes with session.close.
// Prints what it saw as one JSON line.
//   node openai_sdk_translation_ws.mjs BASE_URL KEY MODEL
import OpenAI from "openai";
import WebSocket from "ws";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ apiKey, baseURL: baseURL.replace(/\/$/, "") + "/v1", maxRetries: 0 });
const result = { ok: false, token: null, types: [], errors: [], close_code: null, usage: null };
const finish = () => {
  console.log(JSON.stringify(result));
  process.exit(result.ok ? 0 : 1);
};
const timer = setTimeout(() => { result.errors.push("timeout"); finish(); }, 20000);

let secret;
try {
  secret = await client.post("/realtime/translations/client_secrets", {
    body: { session: { model, audio: { output: { language: "es" } } } },
  });
} catch (err) {
  result.errors.push(`mint: ${err?.message ?? err}`);
  finish();
}
result.token = secret.value;
const url = baseURL.replace(/^http/, "ws").replace(/\/$/, "") +
  "/v1/realtime/translations?model=" + encodeURIComponent(model);
const ws = new WebSocket(url, ["realtime", "openai-insecure-api-key." + secret.value]);
const send = (event) => ws.send(JSON.stringify(event));
ws.on("message", (data) => {
  const event = JSON.parse(String(data));
  result.types.push(event.type);
  if (event.type === "error") result.errors.push(event.error);
  if (event.type === "session.created") {
    // 200 ms of 24 kHz PCM16 silence, then a report.
    send({ type: "session.input_audio_buffer.append", audio: Buffer.alloc(9600).toString("base64") });
    send({ type: "test.translate" });
  }
  if (event.type === "session.output_transcript.delta") {
    result.usage = event.usage ?? null;
    send({ type: "session.close" });
  }
  if (event.type === "session.closed") {
    result.ok = result.errors.length === 0;
    ws.close(1000, "done");
  }
});
ws.on("error", (err) => result.errors.push(String(err?.message ?? err)));
ws.on("close", (code) => {
  result.close_code = code;
  clearTimeout(timer);
  finish();
});
