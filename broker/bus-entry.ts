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

import { INTEREST_FORMAT } from './bus-interest.js';

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
 * One pub/sub message (the QoS 0 path of stream-emitter.ts) in a binary layout, not the stream's JSON headers: the
 * packets of this path are devices' publish packets, and JSON cost ~5 µs per packet to write and ~7 µs to read
 * (measured, 100-packet messages) against ~3.6 µs for a whole delivery on one node, which made a message that
 * crosses nodes cost the cluster several times what it costs one node.
 *
 * Layout (big-endian): u8 format (MESSAGE_FORMAT), u8 instance length, the instance (so a node finds its own
 * messages without reading on: messageInstance), u16 packet count, then per packet: u16 flags, u32 topic length and
 * the topic, then what the flags say is there, in this order: u16 messageId, u16 brokerId length and brokerId, f64
 * brokerCounter, u32 payload length and the payload, u32 length and a JSON object of every other field (MQTT 5
 * properties, clientId...; Buffers in it as {"$b": base64}). A field with a value of an unexpected type goes into
 * that JSON too, so whatever Aedes hands the bus comes out equal on the other side. Hand-written rather than msgpack
 * for the same reason as the stream's: a flat record, one more dependency for nothing.
 */
export const MESSAGE_FORMAT = 2;
const F_PUBLISH = 1 << 0; // cmd === 'publish'
const F_QOS = 1 << 1; // qos 0..2 in bits 2-3
const F_RETAIN = 1 << 4; // retain is a boolean; its value in bit 5
const F_DUP = 1 << 6; // dup is a boolean; its value in bit 7
const F_MESSAGE_ID = 1 << 8;
const F_BROKER_ID = 1 << 9;
const F_BROKER_COUNTER = 1 << 10;
const F_STRING_PAYLOAD = 1 << 11;
const F_EXTRA = 1 << 12;
const F_KNOWN = F_PUBLISH | F_QOS | (3 << 2) | F_RETAIN | (1 << 5) | F_DUP | (1 << 7) | F_MESSAGE_ID | F_BROKER_ID | F_BROKER_COUNTER | F_STRING_PAYLOAD | F_EXTRA;
const COMMON = F_PUBLISH | F_QOS | F_RETAIN | F_DUP | F_BROKER_ID | F_BROKER_COUNTER;
const LAYOUT_KEYS = new Set(['cmd', 'topic', 'qos', 'retain', 'dup', 'messageId', 'brokerId', 'brokerCounter', 'payload']);

/** Written into one growing scratch buffer, copied out once per message. */
const SCRATCH_SIZE = 64 * 1024;
const SCRATCH_KEPT = 1024 * 1024;
let scratch = Buffer.allocUnsafe(SCRATCH_SIZE);

function room(at: number, more: number): void {
  if (at + more <= scratch.length) return;
  const bigger = Buffer.allocUnsafe(Math.max(scratch.length * 2, at + more));
  scratch.copy(bigger, 0, 0, at);
  scratch = bigger;
}

/** Writes `text` as u32 length + UTF-8 (u16 when `short`); returns the new offset. */
function writeText(at: number, text: string, short = false): number {
  room(at, 4 + text.length * 3);
  const n = scratch.write(text, at + (short ? 2 : 4));
  if (short) scratch.writeUInt16BE(n, at);
  else scratch.writeUInt32BE(n, at);
  return at + (short ? 2 : 4) + n;
}

function writeBytes(at: number, bytes: Uint8Array): number {
  room(at, 4 + bytes.length);
  scratch.writeUInt32BE(bytes.length, at);
  scratch.set(bytes, at + 4);
  return at + 4 + bytes.length;
}

export function encodeMessage(instance: string, packets: BusPacket[]): Buffer {
  if (packets.length > 0xffff) throw new RangeError('at most 65,535 packets per bus message');
  let at = 0;
  room(0, 4 + instance.length * 3);
  scratch[at++] = MESSAGE_FORMAT;
  const n = scratch.write(instance, at + 1);
  if (n > 255) throw new RangeError('bus instance id longer than 255 bytes');
  scratch[at] = n;
  at += 1 + n;
  scratch.writeUInt16BE(packets.length, at);
  at += 2;
  for (const packet of packets) {
    const { cmd, qos, retain, dup, messageId, brokerId, brokerCounter, payload } = packet;
    let flags = 0;
    if (cmd === 'publish') flags |= F_PUBLISH;
    if (qos === 0 || qos === 1 || qos === 2) flags |= F_QOS | (qos << 2);
    if (typeof retain === 'boolean') flags |= F_RETAIN | (retain ? 1 << 5 : 0);
    if (typeof dup === 'boolean') flags |= F_DUP | (dup ? 1 << 7 : 0);
    if (typeof messageId === 'number' && Number.isInteger(messageId) && messageId >= 0 && messageId <= 0xffff) flags |= F_MESSAGE_ID;
    // At most 3 UTF-8 bytes per UTF-16 unit: fits the u16 length without measuring the bytes of every packet.
    if (typeof brokerId === 'string' && brokerId.length <= 0xffff / 3) flags |= F_BROKER_ID;
    if (typeof brokerCounter === 'number') flags |= F_BROKER_COUNTER;
    if (typeof payload === 'string') flags |= F_STRING_PAYLOAD;
    // Fields the layout does not carry, or carries but not with this value's type: as JSON (rare: MQTT 5 properties).
    let extra: Record<string, unknown> | undefined;
    for (const key in packet) {
      const value = packet[key];
      if (value === undefined) continue; // as JSON drops it on the stream
      let carried: number | boolean;
      switch (key) {
        case 'topic':
        case 'payload':
          carried = true;
          break;
        case 'cmd':
          carried = flags & F_PUBLISH;
          break;
        case 'qos':
          carried = flags & F_QOS;
          break;
        case 'retain':
          carried = flags & F_RETAIN;
          break;
        case 'dup':
          carried = flags & F_DUP;
          break;
        case 'messageId':
          carried = flags & F_MESSAGE_ID;
          break;
        case 'brokerId':
          carried = flags & F_BROKER_ID;
          break;
        case 'brokerCounter':
          carried = flags & F_BROKER_COUNTER;
          break;
        default:
          carried = false;
      }
      if (!carried) (extra ??= {})[key] = value;
    }
    if (extra) flags |= F_EXTRA;
    room(at, 2);
    scratch.writeUInt16BE(flags, at);
    at = writeText(at + 2, packet.topic);
    if (flags & F_MESSAGE_ID) {
      room(at, 2);
      scratch.writeUInt16BE(messageId as number, at);
      at += 2;
    }
    if (flags & F_BROKER_ID) at = writeText(at, brokerId as string, true);
    if (flags & F_BROKER_COUNTER) {
      room(at, 8);
      scratch.writeDoubleBE(brokerCounter as number, at);
      at += 8;
    }
    if (flags & F_STRING_PAYLOAD) at = writeText(at, payload as string);
    else at = writeBytes(at, payload instanceof Uint8Array ? payload : EMPTY);
    if (extra) at = writeText(at, JSON.stringify(extra, bufferReplacer));
  }
  const message = Buffer.from(scratch.subarray(0, at));
  if (scratch.length > SCRATCH_KEPT) scratch = Buffer.allocUnsafe(SCRATCH_SIZE); // a huge message's room is not kept
  return message;
}

const EMPTY = new Uint8Array(0);

/** The instance that wrote a pub/sub message, read from its start only. */
export function messageInstance(message: Buffer): string | undefined {
  // Interest announcements start the same way.
  if (message.length < 2 || (message[0] !== MESSAGE_FORMAT && message[0] !== INTEREST_FORMAT)) return undefined;
  const end = 2 + message[1]!;
  return end <= message.length ? message.toString('utf8', 2, end) : undefined;
}

/** A pub/sub message back into its packets, or an Error saying what is wrong with it. Every read is bounds-checked. */
export function decodeMessage(message: Buffer): BusEntry | Error {
  if (message.length < 1 || message[0] !== MESSAGE_FORMAT) return new Error(`bus message of another format (${message.length ? message[0] : 'empty'}, expected ${MESSAGE_FORMAT}: a node of another version?)`);
  const cut = new Error('bus message cut short');
  let at = 1;
  if (at + 1 > message.length) return cut;
  const instanceEnd = at + 1 + message[at]!;
  if (instanceEnd + 2 > message.length) return cut;
  const instance = message.toString('utf8', at + 1, instanceEnd);
  const count = message.readUInt16BE(instanceEnd);
  at = instanceEnd + 2;
  const packets: BusPacket[] = [];
  const u32 = (): number | undefined => (at + 4 <= message.length ? message.readUInt32BE(at) : undefined);
  for (let k = 0; k < count; k++) {
    if (at + 2 > message.length) return cut;
    const flags = message.readUInt16BE(at);
    if (flags & ~F_KNOWN) return new Error('bus message with unknown packet flags');
    at += 2;
    const topicLength = u32();
    if (topicLength === undefined || at + 4 + topicLength > message.length) return cut;
    const topic = message.toString('utf8', at + 4, at + 4 + topicLength);
    at += 4 + topicLength;
    const qos = (flags >> 2) & 3;
    if (flags & F_QOS && qos === 3) return new Error('bus message with QoS 3');
    let messageId: number | undefined;
    if (flags & F_MESSAGE_ID) {
      if (at + 2 > message.length) return cut;
      messageId = message.readUInt16BE(at);
      at += 2;
    }
    let brokerId: string | undefined;
    if (flags & F_BROKER_ID) {
      if (at + 2 > message.length) return cut;
      const end = at + 2 + message.readUInt16BE(at);
      if (end > message.length) return cut;
      brokerId = message.toString('utf8', at + 2, end);
      at = end;
    }
    let brokerCounter: number | undefined;
    if (flags & F_BROKER_COUNTER) {
      if (at + 8 > message.length) return cut;
      brokerCounter = message.readDoubleBE(at);
      at += 8;
    }
    const payloadLength = u32();
    if (payloadLength === undefined || at + 4 + payloadLength > message.length) return cut;
    const payload = flags & F_STRING_PAYLOAD ? message.toString('utf8', at + 4, at + 4 + payloadLength) : message.subarray(at + 4, at + 4 + payloadLength);
    at += 4 + payloadLength;
    let packet: BusPacket;
    if ((flags & COMMON) === COMMON && !(flags & F_MESSAGE_ID)) {
      // What Aedes hands the bus for a device's publish: one object literal, one shape (cheaper than adding keys).
      packet = { cmd: 'publish', brokerId, brokerCounter, topic, payload, qos, retain: (flags & (1 << 5)) !== 0, dup: (flags & (1 << 7)) !== 0 };
    } else {
      packet = { topic, payload };
      if (flags & F_PUBLISH) packet.cmd = 'publish';
      if (flags & F_QOS) packet.qos = qos;
      if (flags & F_RETAIN) packet.retain = (flags & (1 << 5)) !== 0;
      if (flags & F_DUP) packet.dup = (flags & (1 << 7)) !== 0;
      if (flags & F_MESSAGE_ID) packet.messageId = messageId;
      if (flags & F_BROKER_ID) packet.brokerId = brokerId;
      if (flags & F_BROKER_COUNTER) packet.brokerCounter = brokerCounter;
    }
    if (flags & F_EXTRA) {
      const length = u32();
      if (length === undefined || at + 4 + length > message.length) return cut;
      let extra: unknown;
      try {
        const text = message.toString('utf8', at + 4, at + 4 + length);
        extra = text.includes('"$b"') ? JSON.parse(text, reviveBuffers) : JSON.parse(text);
      } catch {
        return new Error('bus message with extra fields that are not JSON');
      }
      if (extra === null || typeof extra !== 'object' || Array.isArray(extra)) return new Error('bus message with extra fields that are not an object');
      at += 4 + length;
      for (const [key, value] of Object.entries(extra)) if (key !== '__proto__' && (!LAYOUT_KEYS.has(key) || !(key in packet))) packet[key] = value;
    }
    packets.push(packet);
  }
  if (at !== message.length) return new Error('bus message with bytes after its last packet');
  return { instance, packets };
}
