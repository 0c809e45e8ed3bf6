/**
 * Connections to PostgreSQL (node-postgres): one pool per store object, a URL shown without its password, and the
 * transaction helper every store uses: BEGIN … COMMIT on one pooled connection, ROLLBACK when the work throws,
 * and the whole transaction run again when PostgreSQL reports a serialization failure or a deadlock (SQLSTATE
 * 40001 / 40P01: the transaction was rolled back as a whole and is safe to repeat).
 */
import pg from 'pg';
import { StoreUnavailableError } from '../errors.js';

export type Client = pg.PoolClient;

export interface PostgresOptions {
  /** Connections per store object (default 10). */
  max?: number;
}

/** The URL for messages: user, host, port and database, never the password. */
export function safeLocation(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    u.search = '';
    return u.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

export function openPool(url: string, options: PostgresOptions = {}): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: options.max ?? 10, idleTimeoutMillis: 30_000 });
  // An idle connection that breaks (server restart) is dropped by the pool; without a listener Node would crash.
  pool.on('error', () => undefined);
  return pool;
}

const RETRYABLE = new Set(['40001', '40P01']);
const MAX_ATTEMPTS = 10;

export type Isolation = 'READ COMMITTED' | 'REPEATABLE READ' | 'SERIALIZABLE';

/**
 * Runs `fn` in one transaction on one connection of `pool`; COMMIT returns only once the commit is durable
 * (synchronous_commit, PostgreSQL's default). Retried on 40001/40P01 with a short random backoff.
 */
export async function inTransaction<T>(
  pool: pg.Pool,
  fn: (client: Client) => Promise<T>,
  options: { isolation?: Isolation; readOnly?: boolean; /** A transaction advisory lock taken with BEGIN, in the same round trip. */ lock?: readonly [number, number] } = {},
): Promise<T> {
  const lock = options.lock ? `; SELECT pg_advisory_xact_lock(${Math.trunc(options.lock[0])}, ${Math.trunc(options.lock[1])})` : '';
  for (let attempt = 1; ; attempt++) {
    const client = await pool.connect();
    let broken: Error | undefined;
    try {
      await client.query(`BEGIN ISOLATION LEVEL ${options.isolation ?? 'READ COMMITTED'}${options.readOnly ? ' READ ONLY' : ''}${lock}`);
      try {
        const result = await fn(client);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch((e: Error) => (broken = e));
        throw err;
      }
    } catch (err) {
      if (!RETRYABLE.has((err as { code?: string }).code ?? '') || attempt >= MAX_ATTEMPTS) throw err;
    } finally {
      // A connection whose ROLLBACK failed is in an unknown state: the pool closes it instead of reusing it.
      client.release(broken);
    }
    await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
  }
}

/** A promise queue: calls on one store object take effect one at a time, in the order they were made. */
export class Serial {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn, fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/** Socket errors, and SQLSTATE class 08 (connection exception) and 57P01-57P03 (shutdown, crash, starting up). */
function isUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (/^08/.test(code) || /^57P0[1-3]$/.test(code) || /^E(CONNREFUSED|CONNRESET|PIPE|TIMEDOUT|HOSTUNREACH|NETUNREACH|AI_AGAIN)$/.test(code) || code === 'ENOTFOUND')) return true;
  return err instanceof Error && /Connection terminated|connection timeout|Client has encountered a connection error/i.test(err.message);
}

/** `err` as a StoreUnavailableError naming `what` when it says the server cannot be reached; otherwise unchanged. */
export function unavailable(err: unknown, what: string): unknown {
  if (err instanceof StoreUnavailableError || !isUnavailable(err)) return err;
  return new StoreUnavailableError(`the ${what} is unavailable: ${(err as Error).message}`);
}
