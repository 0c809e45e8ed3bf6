/**
 * The encoding of one Aedes packet as a Redis Stream entry on the cluster bus, and the order of stream ids. Pure: the
 * I/O is in stream-emitter.ts.
 *
 * Fields: `n` the writing emitter's instance id (a node skips its own entries: it delivered them at publish), then per
 * packet `h` the packet without its payload as JSON and `p` the payload bytes as they are (no base64 for the bulk of
 * the entry). Packets published in the same moment share one entry: one XADD, one fsync, one read for all of them.
 * Buffers elsewhere in the packet (none in MQTT 3.1.1; MQTT 5 properties could hold some) travel as {"$b": base64}.
 * Hand-written rather than msgpack: the packet is a flat record of strings, numbers and booleans plus one Buffer,
 * which JSON and a binary-safe Redis field carry without another dependency.
 */

/** What Aedes hands its mq: a publish packet (or a $SYS one), with a topic. */
export type BusPacket = Record<string, unknown> & { topic: string };

export interface BusEntry {
  /** The emitter instance that wrote it. */
  instance: string;
  /** The packets published together (in order). */
  packets: BusPacket[];
}

/** Stream fields, in XADD order, for `packets` written together by `instance` (one entry, one fsync, one read). */
export function encodeEntry(instance: string, packets: BusPacket[]): Array<string | Buffer> {
  const fields: Array<string | Buffer> = ['n', instance];
  for (const packet of packets) {
    const { payload, ...rest } = packet;
    const isString = typeof payload === 'string';
    const record = isString ? { ...rest, $s: true } : rest;
    // The replacer (a call per key) only when a field is an object that could hold a Buffer: an MQTT 3.1.1 packet is
    // flat, and this runs for every message that leaves a node.
    const header = Object.values(rest).some((v) => v !== null && typeof v === 'object') ? JSON.stringify(record, bufferReplacer) : JSON.stringify(record);
    const bytes = isString ? Buffer.from(payload) : payload instanceof Uint8Array ? Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength) : Buffer.alloc(0);
    fields.push('h', header, 'p', bytes);
  }
  return fields;
}

function bufferReplacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const raw = this[key];
  return raw instanceof Uint8Array ? { $b: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64') } : value;
}

const reviveBuffers = (_key: string, value: unknown) =>
  value !== null && typeof value === 'object' && !Array.isArray(value) && typeof (value as { $b?: unknown }).$b === 'string' && Object.keys(value).length === 1
    ? Buffer.from((value as { $b: string }).$b, 'base64')
    : value;

/** The entry from its fields as XREAD returns them (Buffers), or an Error saying what is wrong with it. */
export function decodeEntry(fields: Buffer[]): BusEntry | Error {
  if (fields.length < 6 || (fields.length - 2) % 4 !== 0 || fields[0]!.toString() !== 'n') return new Error('bus entry without its n, h and p fields');
  const instance = fields[1]!.toString();
  const packets: BusPacket[] = [];
  for (let i = 2; i < fields.length; i += 4) {
    if (fields[i]!.toString() !== 'h' || fields[i + 2]!.toString() !== 'p') return new Error('bus entry without its n, h and p fields');
    let parsed: unknown;
    try {
      const text = fields[i + 1]!.toString();
      // The reviver (a call per key) only for a header that holds an encoded Buffer.
      parsed = text.includes('"$b"') ? JSON.parse(text, reviveBuffers) : JSON.parse(text);
    } catch {
      return new Error('bus entry with a header that is not JSON');
    }
    if (parsed === null || typeof parsed !== 'object' || typeof (parsed as { topic?: unknown }).topic !== 'string') return new Error('bus entry without a topic');
    const { $s, ...packet } = parsed as BusPacket & { $s?: boolean };
    const payload = fields[i + 3]!;
    packets.push({ ...packet, payload: $s === true ? payload.toString() : payload });
  }
  return { instance, packets };
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

/**
 * The same fields as one pub/sub message (the QoS 0 path of stream-emitter.ts): each field as a 4-byte big-endian
 * length and its bytes. The first field is `n` and the second the instance, so a node finds its own messages without
 * decoding the rest (messageInstance).
 */
export function encodeMessage(instance: string, packets: BusPacket[]): Buffer {
  const fields = encodeEntry(instance, packets).map((f) => (typeof f === 'string' ? Buffer.from(f) : f));
  const out = Buffer.allocUnsafe(fields.reduce((n, f) => n + 4 + f.length, 0));
  let at = 0;
  for (const f of fields) {
    out.writeUInt32BE(f.length, at);
    f.copy(out, at + 4);
    at += 4 + f.length;
  }
  return out;
}

function splitFields(message: Buffer, max = Infinity): Buffer[] | Error {
  const fields: Buffer[] = [];
  let at = 0;
  while (at < message.length && fields.length < max) {
    if (at + 4 > message.length) return new Error('bus message cut inside a field length');
    const end = at + 4 + message.readUInt32BE(at);
    if (end > message.length) return new Error('bus message cut inside a field');
    fields.push(message.subarray(at + 4, end));
    at = end;
  }
  return fields;
}

/** The instance that wrote a pub/sub message, read from its first two fields only. */
export function messageInstance(message: Buffer): string | undefined {
  const fields = splitFields(message, 2);
  return !(fields instanceof Error) && fields.length === 2 && fields[0]!.toString() === 'n' ? fields[1]!.toString() : undefined;
}

/** A pub/sub message back into its entry, or an Error saying what is wrong with it. */
export function decodeMessage(message: Buffer): BusEntry | Error {
  const fields = splitFields(message);
  return fields instanceof Error ? fields : decodeEntry(fields);
}
