/**
 * Several gateways (a cluster behind no load balancer, or a spare): the agent tries them in turn. It moves on only
 * when a gateway cannot be reached or is unavailable (network errors, 502/503/504); a refusal (4xx) or a reply that
 * fails verification is the CA's answer, the same on every node, and is returned at once.
 */
import { EstError } from './est-client.js';

const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'ECONNABORTED']);

/** Whether `err` says "this gateway is not there right now" rather than "the CA said no". */
export function isUnreachable(err: unknown): boolean {
  if (err instanceof EstError) return err.status !== undefined && [502, 503, 504].includes(err.status);
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code && UNREACHABLE.has(code)) return true;
  return err instanceof Error && /socket hang up|timed out|timeout/i.test(err.message);
}

/** Splits "https://a:8443,https://b:8443" (what --server and --mqtt take) into URLs; each must parse. */
export function splitUrls(value: string): string[] {
  const urls = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (urls.length === 0 || urls.length > 16) throw new Error('give between 1 and 16 URLs, separated by commas');
  for (const url of urls) new URL(url); // throws on a malformed one
  return urls;
}

/** The gateways in order, starting with the one that answered last. */
export class ServerList {
  private preferred = 0;

  constructor(readonly servers: string[]) {
    if (servers.length === 0) throw new Error('no gateway URL');
  }

  async call<T>(attempt: (server: string) => Promise<T>): Promise<T> {
    let last: unknown;
    for (let i = 0; i < this.servers.length; i++) {
      const index = (this.preferred + i) % this.servers.length;
      try {
        const result = await attempt(this.servers[index]!);
        this.preferred = index;
        return result;
      } catch (err) {
        if (!isUnreachable(err)) throw err;
        last = err;
      }
    }
    throw last;
  }
}
