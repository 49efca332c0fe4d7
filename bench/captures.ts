// `bun bench/captures.ts [streams] [chunks]`: what request/response captures cost a streamed
// answer. Alternates rounds of reading a synthetic SSE stream (chunks of llama-server's size)
// three ways: the stream as it is, through CaptureStore.capture() with captures off (bound 0:
// the Response is returned untouched) and with captures on (a 64 MiB bound, so evictions run
// too), and prints medians and ratios. Then fills a 4 MiB store with 10x its bound and prints
// the kept bytes against the bound.
import { CaptureStore, MIB } from "../src/activity/captures";

const STREAMS = Number(process.argv[2] ?? 300);
const CHUNKS = Number(process.argv[3] ?? 256);
const ROUNDS = 5;
const encoder = new TextEncoder();
const event = encoder.encode(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: " token" } }], object: "chat.completion.chunk", id: "chatcmpl-0123456789abcdef", model: "bench" })}\n\n`);

function sse(): Response {
  let i = 0;
  return new Response(
    new ReadableStream<Uint8Array>({
      pull(c) {
        if (i++ < CHUNKS) c.enqueue(event);
        else c.close();
      },
    }),
    { headers: { "content-type": "text/event-stream" } },
  );
}

async function drain(res: Response): Promise<number> {
  const reader = res.body!.getReader();
  let n = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return n;
    n += value.byteLength;
  }
}

const off = new CaptureStore(() => 0);
const on = new CaptureStore(() => 64 * MIB);
let seq = 0;
const ways: Record<string, () => Response> = {
  "as is": () => sse(),
  "captures off": () => off.capture({ requestId: `r${seq++}`, route: "/v1/chat/completions", model: "bench" }, '{"model":"bench"}', sse()),
  "captures on": () => on.capture({ requestId: `r${seq++}`, route: "/v1/chat/completions", model: "bench" }, '{"model":"bench"}', sse()),
};

async function round(make: () => Response): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < STREAMS; i++) await drain(make());
  return ((performance.now() - t0) * 1000) / STREAMS;
}

const times: Record<string, number[]> = Object.fromEntries(Object.keys(ways).map((k) => [k, []]));
for (const make of Object.values(ways)) await round(make); // warm-up
for (let r = 0; r < ROUNDS; r++) for (const [name, make] of Object.entries(ways)) times[name]!.push(await round(make));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const base = median(times["as is"]!);
console.log(`captures: ${STREAMS} streams of ${CHUNKS} chunks (${event.byteLength} B each) x ${ROUNDS} rounds, medians`);
console.log("| path | per stream | vs as is |");
console.log("|---|---|---|");
for (const name of Object.keys(ways)) {
  const m = median(times[name]!);
  console.log(`| ${name} | ${m.toFixed(1)} us | ${(m / base).toFixed(2)}x |`);
}
console.log(`captures on: ${on.stats().captures} kept, ${(on.stats().bytes / MIB).toFixed(1)} MiB of ${on.stats().maxBytes / MIB} MiB`);

// The bound under pressure: 10x the bound captured into a 4 MiB store.
const small = new CaptureStore(() => 4 * MIB);
const perStream = CHUNKS * event.byteLength;
const need = Math.ceil((40 * MIB) / perStream);
let peak = 0;
for (let i = 0; i < need; i++) {
  await drain(small.capture({ requestId: `p${i}`, route: "/v1/chat/completions", model: "bench" }, '{"model":"bench"}', sse()));
  peak = Math.max(peak, small.stats().bytes);
}
console.log(`bound: ${need} streams (${((need * perStream) / MIB).toFixed(1)} MiB relayed) into a 4 MiB store: peak kept ${(peak / MIB).toFixed(2)} MiB, ${small.stats().captures} captures kept at the end`);
