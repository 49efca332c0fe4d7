/** @jsxImportSource hono/jsx */
import type { PeerSnapshot } from "../../peers/registry";
import type { RpcWorkerSnapshot } from "../../rpc/workers";
import { clock } from "../format";
import { Pill } from "./badge";

const tone = (p: PeerSnapshot) => (p.state === "up" && !p.backoffUntil ? "ok" : p.state === "unknown" ? "idle" : "bad");
const label = (p: PeerSnapshot) => (p.state === "up" && p.backoffUntil ? "backing off" : p.state === "unknown" ? "not checked yet" : p.state);

/** The dashboard's Peers card: each peer's state, latency, models (with status) and last error. */
export function PeersSection(props: { peers: PeerSnapshot[] }) {
  if (props.peers.length === 0) return null;
  return (
    <section class="card" aria-labelledby="peers-heading">
      <h2 id="peers-heading">Peers</h2>
      <div class="table-wrap"><table class="models peers">
        <thead>
          <tr>
            <th scope="col">Peer</th>
            <th scope="col">State</th>
            <th scope="col">Latency</th>
            <th scope="col">Models</th>
            <th scope="col">Requests</th>
          </tr>
        </thead>
        <tbody>
          {props.peers.map((p) => (
            <tr data-peer={p.name}>
              <td>
                <strong>{p.name}</strong>
                <div class="path muted">{p.url}</div>
                {p.product ? <div class="muted small">Llama Async Proxy</div> : null}
              </td>
              <td>
                <Pill tone={tone(p)}>{label(p)}</Pill>
                {p.lastError && p.state !== "up" ? <div class="reason">{p.lastError.message}</div> : null}
                {p.backoffUntil ? <div class="muted small">skipped until {clock(p.backoffUntil)} UTC</div> : null}
              </td>
              <td>{p.latencyMs !== undefined ? `${Math.round(p.latencyMs)} ms` : "–"}</td>
              <td>
                {p.models.length === 0 ? (
                  <span class="muted">none</span>
                ) : (
                  <ul class="peer-models">
                    {p.models.map((m) => (
                      <li>
                        {m.id}
                        {m.status ? <span class="muted"> {m.status}</span> : null}
                      </li>
                    ))}
                  </ul>
                )}
              </td>
              <td>
                {p.inFlight} active, {p.requestsTotal} total
                {p.requestErrors ? <span class="muted">, {p.requestErrors} failed</span> : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table></div>
    </section>
  );
}

/** The dashboard's RPC workers card: each worker's rpc-server, devices and the models split over it. */
export function RpcWorkersSection(props: { workers: RpcWorkerSnapshot[] }) {
  if (props.workers.length === 0) return null;
  return (
    <section class="card" aria-labelledby="rpc-heading">
      <h2 id="rpc-heading">RPC workers</h2>
      <div class="table-wrap"><table class="models peers">
        <thead>
          <tr>
            <th scope="col">Worker</th>
            <th scope="col">rpc-server</th>
            <th scope="col">Devices</th>
            <th scope="col">Models</th>
          </tr>
        </thead>
        <tbody>
          {props.workers.map((w) => (
            <tr data-worker={w.name}>
              <td>
                <strong>{w.name}</strong>
                <div class="path muted">{w.url}</div>
              </td>
              <td>
                <Pill tone={w.state === "up" && w.rpcState === "running" ? "ok" : w.state === "unknown" ? "idle" : "bad"}>
                  {w.state === "up" ? (w.rpcState ?? "unknown") : w.state === "unknown" ? "not checked yet" : "down"}
                </Pill>
                {w.endpoint ? <div class="path muted">{w.endpoint}</div> : null}
                {w.restarts ? <div class="muted small">{w.restarts} restarts</div> : null}
                {w.lastError && w.state !== "up" ? <div class="reason">{w.lastError.message}</div> : null}
              </td>
              <td>
                {w.devices.length === 0 ? <span class="muted">not reported</span> : (
                  <ul class="peer-models">
                    {w.devices.map((d) => <li>{d.name} <span class="muted">{d.description}, {d.freeMiB} of {d.totalMiB} MiB free</span></li>)}
                  </ul>
                )}
              </td>
              <td>{w.models.length ? w.models.join(", ") : <span class="muted">none</span>}</td>
            </tr>
          ))}
        </tbody>
      </table></div>
    </section>
  );
}
