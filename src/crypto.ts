/**
 * Hashes, random tokens and constant-time comparison from Bun's own crypto (Bun.CryptoHasher, the
 * Web Crypto global and its timingSafeEqual), not node:crypto: loading node:crypto costs ~1.9 ms
 * of CPU and ~1.7 MB at start-up (compiled probe beside SQLite and Bun.serve, 6 alternated runs),
 * and the process only needs these four operations.
 */

/** SHA-256 of `data` as lowercase hex. */
export const sha256Hex = (data: string | Uint8Array): string => new Bun.CryptoHasher("sha256").update(data).digest("hex");

/** SHA-256 of `data`, the 32 bytes. */
export const sha256 = (data: string | Uint8Array): Uint8Array => new Bun.CryptoHasher("sha256").update(data).digest();

/** `bytes` random bytes from the system's CSPRNG, as base64url text (no padding). */
export const randomToken = (bytes: number): string => Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString("base64url");

/** Whether two byte arrays of the same length are equal, in time that does not depend on where they differ. */
export const timingSafeEqual = (a: Uint8Array, b: Uint8Array): boolean => crypto.timingSafeEqual(a, b);
