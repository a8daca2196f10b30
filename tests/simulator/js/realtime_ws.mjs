// The official `openai` JS SDK against the simulator over WebSocket (GA): mint an ephemeral
// key with client_secrets, then run one text turn with OpenAIRealtimeWS. Prints one JSON line.
import OpenAI from "openai";
import { OpenAIRealtimeWS } from "openai/realtime/ws";

const baseURL = process.env.SIM_BASE_URL;
const backend = new OpenAI({ apiKey: process.env.SIM_API_KEY, baseURL });
const secret = await backend.realtime.clientSecrets.create({
  session: { type: "realtime", instructions: "Be brief." },
});

const client = new OpenAI({ apiKey: secret.value, baseURL });
const rt = new OpenAIRealtimeWS({ model: "gpt-realtime" }, client);
const types = [];
let text = null;
const timer = setTimeout(() => {
  console.log(JSON.stringify({ error: "timeout", types }));
  process.exit(1);
}, 20000);
rt.on("error", (err) => {
  console.log(JSON.stringify({ error: String(err && err.message), types }));
  process.exit(1);
});
rt.on("event", (event) => types.push(event.type));
rt.on("session.created", () => {
  rt.send({ type: "session.update", session: { type: "realtime", output_modalities: ["text"] } });
  rt.send({
    type: "conversation.item.create",
    item: { type: "message", role: "user", content: [{ type: "input_text", text: "hello from node" }] },
  });
  rt.send({ type: "response.create" });
});
rt.on("response.output_text.done", (event) => {
  text = event.text;
});
rt.on("response.done", () => {
  clearTimeout(timer);
  console.log(JSON.stringify({ secret: secret.value, secretSession: secret.session, text, types }));
  rt.close();
});
