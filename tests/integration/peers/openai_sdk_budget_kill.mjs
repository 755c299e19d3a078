// A budget kill as an agent framework sees it, through the official `openai` npm SDK's WebSocket
// client (`openai/realtime/ws`): one response on a key whose budget that response uses up; the
// gateway then sends an `error` event and closes. Prints one JSON line: the responses done, every
// error event's `error` object and the close code.
//   node openai_sdk_budget_kill.mjs BASE_URL KEY MODEL
// As in openai_sdk_realtime_ws.mjs, the SDK dials wss:// and the test gateway serves plain HTTP:
// the socket's transport is a plain TCP connection.
import net from "node:net";
import OpenAI from "openai";
import { OpenAIRealtimeWS } from "openai/realtime/ws";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ apiKey, baseURL: baseURL.replace(/\/$/, "") + "/v1", maxRetries: 0 });
const result = { response_done: 0, errors: [], sdk_errors: [], close_code: null, types: [] };
const plainTcp = (options) => net.connect({ host: options.host, port: options.port });
const rt = new OpenAIRealtimeWS({ model, options: { createConnection: plainTcp } }, client);
const finish = () => {
  console.log(JSON.stringify(result));
  process.exit(0);
};
const timer = setTimeout(() => { result.sdk_errors.push("timeout"); finish(); }, 20000);
rt.on("event", (event) => {
  result.types.push(event.type);
  if (event.type === "error") result.errors.push(event.error);
});
// The SDK also surfaces server `error` events here; the event handler above keeps their objects.
rt.on("error", (err) => result.sdk_errors.push(String(err?.message ?? err)));
rt.on("session.created", () => rt.send({ type: "response.create" }));
rt.on("response.done", () => { result.response_done += 1; });
rt.socket.on("close", (code) => {
  result.close_code = code;
  clearTimeout(timer);
  finish();
});
