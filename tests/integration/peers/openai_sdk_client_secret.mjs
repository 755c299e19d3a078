// Mints an ephemeral token with the official `openai` npm SDK pointed at the gateway, exactly as
// an app's server would, and prints the SDK's result as one JSON line.
//   node openai_sdk_client_secret.mjs BASE_URL KEY MODEL
import OpenAI from "openai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ apiKey, baseURL: baseURL.replace(/\/$/, "") + "/v1", timeout: 10000,
                            maxRetries: 0 });
try {
  const secret = await client.realtime.clientSecrets.create({
    session: { type: "realtime", model, instructions: "minted by the openai SDK" },
    expires_after: { anchor: "created_at", seconds: 120 },
  });
  console.log(JSON.stringify({ ok: true, secret }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, status: e.status ?? null, error: String(e) }));
  process.exitCode = 1;
}
