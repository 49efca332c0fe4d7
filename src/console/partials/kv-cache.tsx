/** @jsxImportSource hono/jsx */
import type { ModelView } from "../data";
import { formatBytes, formatDuration } from "../format";

/**
 * A model's saved KV caches (conversations kept across swaps: src/kvcache/): tokens, size, age,
 * hits, each with a delete button. Nothing is shown for a model with none.
 */
export function KvCacheList(props: { m: ModelView; now: number }) {
  const list = props.m.kvCaches ?? [];
  if (!list.length) return null;
  const id = encodeURIComponent(props.m.id);
  const total = list.reduce((n, e) => n + e.sizeBytes, 0);
  const form = (action: string) => ({ method: "post" as const, action, "hx-post": action, "hx-target": "#models-table", "hx-swap": "outerHTML" });
  return (
    <details class="kv-caches" data-kv-caches={props.m.id}>
      <summary>
        Saved conversations: {list.length} ({formatBytes(total)})
      </summary>
      <table class="compact">
        <thead>
          <tr><th scope="col">Tokens</th><th scope="col">Size</th><th scope="col">Age</th><th scope="col">Hits</th><th scope="col"><span class="sr-only">Delete</span></th></tr>
        </thead>
        <tbody>
          {list.map((e) => (
            <tr data-kv-entry={e.id}>
              <td class="num">{e.tokens.toLocaleString("en-US")}</td>
              <td class="num">{formatBytes(e.sizeBytes)}</td>
              <td class="num">{formatDuration((props.now - Date.parse(e.createdAt)) / 1000)}</td>
              <td class="num">{e.hits}</td>
              <td>
                <form {...form(`/ui/models/${id}/kv-cache/${encodeURIComponent(e.id)}/delete`)}>
                  <button type="submit" class="btn small danger" aria-label={`Delete the saved conversation of ${e.tokens} tokens`}>Delete</button>
                </form>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form {...form(`/ui/models/${id}/kv-cache/delete`)}>
        <button type="submit" class="btn small">Delete all</button>
      </form>
    </details>
  );
}
