import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../config/store";

/** What an instance id looks like: "lap-" and 16 hex digits (8 random bytes). */
export const INSTANCE_ID_RE = /^lap-[0-9a-f]{16}$/;

/**
 * This instance's id: random, created once per data directory and kept in `<dataDir>/instance-id`,
 * so a restart keeps it (peers recognise us) and two instances never share one unless they share a
 * data directory (which the pidfile already forbids). A file that does not hold a valid id is
 * replaced.
 */
export function loadInstanceId(dataDir: string): string {
  const path = join(dataDir, "instance-id");
  try {
    const text = readFileSync(path, "utf8").trim();
    if (INSTANCE_ID_RE.test(text)) return text;
  } catch {
    // absent: created below
  }
  const id = `lap-${Buffer.from(crypto.getRandomValues(new Uint8Array(8))).toString("hex")}`;
  mkdirSync(dataDir, { recursive: true });
  writeFileAtomic(path, id + "\n");
  return id;
}

/**
 * The loop guard travels in the standard `Via` header (RFC 9110 7.6.3): every hop appends
 * "1.1 <received-by>", and we use our instance id as the received-by pseudonym. Other proxies on
 * the way (nginx, ...) may append their own entries; we only look for ours.
 */
export const VIA_PROTOCOL = "1.1";
/** A Via longer than this is treated as a loop (nothing legitimate passes 32 hops). */
export const MAX_VIA_HOPS = 32;
export const MAX_VIA_LENGTH = 4096;

/** The received-by names in a Via header, in order. */
export function viaHops(header: string | null | undefined): string[] {
  if (!header) return [];
  return header
    .slice(0, MAX_VIA_LENGTH + 1)
    .split(",")
    .map((entry) => entry.trim().split(/\s+/)[1] ?? "")
    .filter(Boolean);
}

/** True when the request already passed `instanceId` (or carries an absurd Via: refuse to extend it). */
export function hasPassed(header: string | null | undefined, instanceId: string): boolean {
  if (header && header.length > MAX_VIA_LENGTH) return true;
  const hops = viaHops(header);
  return hops.length >= MAX_VIA_HOPS || hops.includes(instanceId);
}

/** The Via value to send on: what came in plus our own hop. */
export function appendVia(header: string | null | undefined, instanceId: string): string {
  const own = `${VIA_PROTOCOL} ${instanceId}`;
  return header?.trim() ? `${header.trim()}, ${own}` : own;
}

/** Response header by which another instance of this product says who it is. */
export const INSTANCE_HEADER = "x-llama-proxy-instance";
