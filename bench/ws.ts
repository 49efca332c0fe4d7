// bench/ws: N subscribed clients of /llamaproxws; for each metrics_update, the spread between the
// first and the last client receiving it (target < 50 ms for 1,000 clients), and the latency from
// the server's broadcast timestamp to the first and last receipt.
//
//   bun bench/ws.ts [--clients 1000] [--rounds 10] [--protocol plain|socketio] [--flood]
//
// The server runs in its own process (bench/ws-server.ts) so its event loop is not the clients'.
// --flood adds one client that sends pings as fast as it can, to show it does not slow the rest.
import { parseArgs } from "node:util";
import { io, type Socket } from "socket.io-client";

const { values } = parseArgs({
  options: {
    clients: { type: "string", default: "1000" },
    rounds: { type: "string", default: "10" },
    protocol: { type: "string", default: "plain" },
    interval: { type: "string", default: "1000" },
    flood: { type: "boolean", default: false },
  },
});
const N = Number(values.clients);
const ROUNDS = Number(values.rounds);
const protocol = values.protocol as "plain" | "socketio";

const child = Bun.spawn(["bun", new URL("./ws-server.ts", import.meta.url).pathname], {
  stdout: "pipe",
  stderr: "inherit",
  env: { ...process.env, BENCH_METRICS_INTERVAL_MS: values.interval },
});
const killChild = () => {
  try {
    child.kill("SIGTERM");
  } catch {}
};
process.on("exit", killChild);

const reader = child.stdout.getReader();
let head = "";
while (!head.includes("\n")) {
  const { value, done } = await reader.read();
  if (done) throw new Error("bench server exited before listening");
  head += new TextDecoder().decode(value);
}
const { url } = JSON.parse(head.split("\n")[0]!) as { url: string };
const wsUrl = url.replace(/^http/, "ws") + "/llamaproxws";

/** receipts.get(serverTimestamp) = local receive times (performance.now) and Date.now() */
const receipts = new Map<string, { perf: number[]; wall: number[]; sentAt: number }>();
function record(key: string, sentAt: number, perf = performance.now(), wall = Date.now()) {
  let r = receipts.get(key);
  if (!r) receipts.set(key, (r = { perf: [], wall: [], sentAt }));
  r.perf.push(perf);
  r.wall.push(wall);
}

const plain: WebSocket[] = [];
const sio: Socket[] = [];
let initialStates = 0;

async function connectPlain(): Promise<void> {
  const ws = new WebSocket(wsUrl);
  plain.push(ws);
  ws.onmessage = (e) => {
    // Take the receive time first, then read only what identifies the update: a full JSON.parse
    // per client would measure this process's parsing, not the server's fan-out.
    const perf = performance.now();
    const wall = Date.now();
    const text = e.data as string;
    if (!text.startsWith('{"type":"metrics_update"')) return;
    if (!initialized.has(ws)) {
      initialized.add(ws);
      initialStates++;
      return;
    }
    const key = text.slice(text.indexOf('"timestamp":"') + 13, text.indexOf('"timestamp":"') + 37);
    const sentAt = Number(text.slice(text.lastIndexOf('"timestamp":') + 12, text.length - 1));
    record(key, sentAt, perf, wall);
  };
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error("connect failed"));
  });
  ws.send(JSON.stringify({ type: "subscribe", data: { type: "metrics" }, timestamp: Date.now() }));
}
const initialized = new Set<unknown>();

async function connectSocketIo(): Promise<void> {
  const socket = io(url, { path: "/llamaproxws", transports: ["websocket"], forceNew: true });
  sio.push(socket);
  socket.on("metrics_update", (data: { timestamp: string }) => {
    if (!initialized.has(socket)) {
      initialized.add(socket);
      initialStates++;
      return;
    }
    record(data.timestamp, NaN);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("connect_error", reject);
  });
  socket.emit("subscribe", { type: "metrics" });
}

const t0 = performance.now();
for (let i = 0; i < N; i += 100) {
  await Promise.all(Array.from({ length: Math.min(100, N - i) }, () => (protocol === "plain" ? connectPlain() : connectSocketIo())));
}
const deadline = Date.now() + 30_000;
while (initialStates < N && Date.now() < deadline) await Bun.sleep(10);
console.log(`${N} ${protocol} clients connected and subscribed in ${(performance.now() - t0).toFixed(0)} ms (${initialStates} got the immediate state)`);

// The flooder runs in its own process too, so its send buffer does not load the measured clients.
let flooder: ReturnType<typeof Bun.spawn> | undefined;
if (values.flood) {
  // A persistent attacker: floods, and reconnects whenever the server closes it.
  const script = `
    let sent = 0, closes = 0, reason = "";
    const open = () => {
      const ws = new WebSocket(${JSON.stringify(wsUrl)});
      ws.onopen = () => {
        const blast = () => {
          if (ws.readyState !== 1) return;
          // Keep the socket's own buffer bounded: the server pausing reads makes it grow.
          if (ws.bufferedAmount < 1 << 20) for (let i = 0; i < 2000; i++) { ws.send('{"type":"ping"}'); sent++; }
          setTimeout(blast, 0);
        };
        blast();
      };
      ws.onclose = (e) => { closes++; reason = e.code + " " + e.reason; setTimeout(open, 0); };
    };
    open();
    process.on("SIGTERM", () => { process.stdout.write(sent + " pings, closed by the server " + closes + " times (" + reason + ")\\n"); process.exit(0); });
  `;
  flooder = Bun.spawn(["bun", "-e", script], { stdout: "pipe", stderr: "inherit" });
  console.log("flooding from one extra client in another process");
}

// Wait for ROUNDS complete rounds (every client got it) after the first partial one.
const complete = () => [...receipts.values()].filter((r) => r.perf.length === N);
const roundDeadline = Date.now() + (ROUNDS + 5) * Number(values.interval) + 20_000;
while (complete().length < ROUNDS && Date.now() < roundDeadline) await Bun.sleep(20);

const rounds = complete().slice(0, ROUNDS);
const spreads = rounds.map((r) => Math.max(...r.perf) - Math.min(...r.perf)).sort((a, b) => a - b);
const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? NaN;
console.log(`rounds measured: ${rounds.length} (each received by all ${N} clients)`);
console.log(`spread first->last receipt: min ${spreads[0]?.toFixed(1)} ms, median ${pct(spreads, 50).toFixed(1)} ms, max ${spreads.at(-1)?.toFixed(1)} ms`);
if (protocol === "plain") {
  const firstLat = rounds.map((r) => Math.min(...r.wall) - r.sentAt).sort((a, b) => a - b);
  const lastLat = rounds.map((r) => Math.max(...r.wall) - r.sentAt).sort((a, b) => a - b);
  console.log(`broadcast -> first receipt: median ${pct(firstLat, 50)} ms; broadcast -> last receipt: median ${pct(lastLat, 50)} ms, max ${lastLat.at(-1)} ms (ms clock)`);
}
if (flooder) {
  flooder.kill("SIGTERM");
  const sent = (await new Response(flooder.stdout as ReadableStream).text()).trim();
  console.log(`flooder: ${sent}`);
}
// The first update can be partial (clients subscribing as it went out) and the last in flight.
const incomplete = [...receipts.values()].filter((r) => r.perf.length < N).length;
if (incomplete > 2) console.log(`warning: ${incomplete} updates reached fewer than ${N} clients`);

// Stop the server first so it reports its side with every client still connected.
killChild();
await child.exited;
for (const ws of plain) ws.close();
for (const s of sio) s.disconnect();
await child.exited;
process.exit(0);
