// The benches' SSE reader: when the first byte came and how many `data:` events the stream
// carried, read as a client would (no parsing beyond the event boundaries).

/** Reads `res`'s body to its end: `first` is performance.now() at the first chunk (0 if none). */
export async function readSseEvents(res: Response): Promise<{ first: number; events: number }> {
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let first = 0;
  let events = 0;
  let carry = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    if (!first) first = performance.now();
    carry += dec.decode(value, { stream: true });
    let i;
    while ((i = carry.indexOf("\n\n")) >= 0) {
      if (carry.startsWith("data: ")) events++;
      carry = carry.slice(i + 2);
    }
  }
  return { first, events };
}
