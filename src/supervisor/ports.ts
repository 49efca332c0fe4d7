/**
 * True when nothing listens on host:port. A synchronous bind attempt (Bun.listen throws
 * EADDRINUSE) is the only honest test; connecting would miss a socket bound but not accepting.
 */
export function isPortFree(host: string, port: number): boolean {
  const hostname = host.startsWith("[") ? host.slice(1, -1) : host;
  try {
    const probe = Bun.listen({ hostname, port, socket: { data() {} } });
    probe.stop(true);
    return true;
  } catch {
    return false;
  }
}

/**
 * Hands out llama-server ports from a base port upward, skipping ports we already gave to a
 * model and ports something else listens on. Allocation is synchronous, so two concurrent
 * starts can never get the same port from us (there is no await between check and reserve).
 */
export class PortAllocator {
  private reserved = new Set<number>();

  constructor(private readonly isFree: (host: string, port: number) => boolean = isPortFree) {}

  /** Reserves and returns the first usable port from `basePort` up, never one in `skip`. */
  allocate(host: string, basePort: number, skip?: ReadonlySet<number>, maxTries = 1000): number {
    for (let port = basePort; port <= 65535 && port < basePort + maxTries; port++) {
      if (this.reserved.has(port) || skip?.has(port)) continue;
      if (!this.isFree(host, port)) continue;
      this.reserved.add(port);
      return port;
    }
    throw new Error(`No free port for llama-server from ${basePort} upward on ${host}`);
  }

  release(port: number | undefined): void {
    if (port !== undefined) this.reserved.delete(port);
  }

  get inUse(): number[] {
    return [...this.reserved].sort((a, b) => a - b);
  }
}
