/**
 * The encoding of one Aedes packet as a Redis Stream entry on the cluster bus, and the order of stream ids. Pure: the
 * I/O is in stream-emitter.ts.
 *
 * Fields: `n` the writing emitter's instance id (a node skips its own entries: it delivered them at publish), `h` the
 * packet without its payload as JSON, `p` the payload bytes as they are (no base64 for the bulk of the entry).
 * Buffers elsewhere in the packet (none in MQTT 3.1.1; MQTT 5 properties could hold some) travel as {"$b": base64}.
 * Hand-written rather than msgpack: the packet is a flat record of strings, numbers and booleans plus one Buffer,
 * which JSON and a binary-safe Redis field carry without another dependency.
 */

/** What Aedes hands its mq: a publish packet (or a $SYS one), with a topic. */
export type BusPacket = Record<string, unknown> & { topic: string };

export interface BusEntry {
  /** The emitter instance that wrote it. */
  instance: string;
  packet: BusPacket;
}

/** Stream fields, in XADD order, for `packet` written by `instance`. */
export function encodeEntry(instance: string, packet: BusPacket): Array<string | Buffer> {
  const { payload, ...rest } = packet;
  const isString = typeof payload === 'string';
  const header = JSON.stringify(isString ? { ...rest, $s: true } : rest, function (this: Record<string, unknown>, key, value: unknown) {
    const raw = this[key];
    return raw instanceof Uint8Array ? { $b: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64') } : value;
  });
  const bytes = isString ? Buffer.from(payload) : payload instanceof Uint8Array ? Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength) : Buffer.alloc(0);
  return ['n', instance, 'h', header, 'p', bytes];
}

/** The entry from its fields as XREAD returns them (Buffers), or an Error saying what is wrong with it. */
export function decodeEntry(fields: Buffer[]): BusEntry | Error {
  let instance: string | undefined;
  let header: string | undefined;
  let payload: Buffer | undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i]!.toString();
    if (name === 'n') instance = fields[i + 1]!.toString();
    else if (name === 'h') header = fields[i + 1]!.toString();
    else if (name === 'p') payload = fields[i + 1]!;
  }
  if (instance === undefined || header === undefined || payload === undefined) return new Error('bus entry without its n, h and p fields');
  let parsed: unknown;
  try {
    parsed = JSON.parse(header, (_key, value: unknown) =>
      value !== null && typeof value === 'object' && !Array.isArray(value) && typeof (value as { $b?: unknown }).$b === 'string' && Object.keys(value).length === 1
        ? Buffer.from((value as { $b: string }).$b, 'base64')
        : value,
    );
  } catch {
    return new Error('bus entry with a header that is not JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || typeof (parsed as { topic?: unknown }).topic !== 'string') return new Error('bus entry without a topic');
  const { $s, ...packet } = parsed as BusPacket & { $s?: boolean };
  return { instance, packet: { ...packet, payload: $s === true ? payload.toString() : payload } };
}

/** Orders two stream ids ("ms-seq"): negative when a sorts before b. */
export function compareIds(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  const ms = BigInt(am) - BigInt(bm);
  if (ms !== 0n) return ms < 0n ? -1 : 1;
  const seq = BigInt(as) - BigInt(bs);
  return seq === 0n ? 0 : seq < 0n ? -1 : 1;
}
