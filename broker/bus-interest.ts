/**
 * Which topics the other nodes of a cluster subscribe to, so that a node sends a device's QoS 0 message to Redis only
 * when some other node has a subscriber for it (stream-emitter.ts). Without it every node received, decoded and
 * matched every QoS 0 message of the whole cluster whether or not a client of its own wanted it: each node's input
 * grew with the cluster's total traffic, and adding nodes added no QoS 0 capacity.
 *
 * Each node announces its own topic filters on its QoS 0 channel, in order with its messages: `add` when a filter
 * gets its first local subscriber, `remove` when it loses its last, and its whole set (`state`) every heartbeat, which also says it is alive. A node forgets another that has
 * been silent for three heartbeats. Until a node has heard a full round of heartbeats (at start, and after its
 * subscriber connection to Redis came back) it sends every QoS 0 message, as before. Each node answers an `add` with
 * an `ack` once it applied it, and the subscribing node sends its SUBACK only when every node it knows answered (or
 * a second passed: a node that died without a word), so a message published anywhere after the SUBACK is sent to it.
 * Without the answers, the other node could still be about to read the announcement when the message came.
 *
 * Pure: encoding, decoding and the table of the other nodes' filters; the I/O is in stream-emitter.ts.
 */
import { createRequire } from 'node:module';
import { isProtocolTopic } from '../protocol/index.js';

const require = createRequire(import.meta.url);
interface TopicTest {
  add(filter: string): unknown;
  remove(filter: string): unknown;
  test(topic: string): boolean;
}
// Qlobber is what mqemitter (Aedes' and the bus' local matcher) matches with; the same options give the same MQTT
// semantics here (`+` matching an empty level, `a/#` matching `a`), so a node never misjudges what another wants.
const { QlobberTrue } = require('qlobber') as { QlobberTrue: new (options: Record<string, unknown>) => TopicTest };

/** First byte of an interest message; packet messages start with bus-entry.ts' MESSAGE_FORMAT. */
export const INTEREST_FORMAT = 3;
const OPS = ['add', 'remove', 'state', 'ack'] as const;
export type InterestOp = (typeof OPS)[number];

export interface InterestMessage {
  instance: string;
  op: InterestOp;
  /** An `add`'s number (per sender), which the `ack`s answer; 0 otherwise. */
  seq: number;
  /** The filters; for an `ack`, the one instance it answers. */
  filters: string[];
}

/**
 * Whether a subscription with this filter can match a device's QoS 0 message (the only messages routed by interest):
 * `$` filters and the gateway's own wott/ namespace never do, and every node has subscriptions of that kind.
 */
export function routedFilter(filter: string): boolean {
  return !filter.startsWith('$') && !isProtocolTopic(filter);
}

/**
 * Layout (big-endian): u8 INTEREST_FORMAT, u8 instance length, the instance, u8 op, u32 seq, u32 count, then per
 * filter u16 length and the filter.
 */
export function encodeInterest(instance: string, op: InterestOp, filters: Iterable<string>, seq = 0): Buffer {
  const parts: Buffer[] = [];
  let count = 0;
  for (const filter of filters) {
    const bytes = Buffer.from(filter);
    if (bytes.length > 0xffff) throw new RangeError('topic filter longer than 65,535 bytes');
    const length = Buffer.allocUnsafe(2);
    length.writeUInt16BE(bytes.length);
    parts.push(length, bytes);
    count++;
  }
  const id = Buffer.from(instance);
  if (id.length > 255) throw new RangeError('bus instance id longer than 255 bytes');
  const head = Buffer.allocUnsafe(2 + id.length + 9);
  head[0] = INTEREST_FORMAT;
  head[1] = id.length;
  id.copy(head, 2);
  head[2 + id.length] = OPS.indexOf(op);
  head.writeUInt32BE(seq >>> 0, 3 + id.length);
  head.writeUInt32BE(count, 7 + id.length);
  return Buffer.concat([head, ...parts]);
}

/** An interest message back, or an Error saying what is wrong with it. Every read is bounds-checked. */
export function decodeInterest(message: Buffer): InterestMessage | Error {
  if (message.length < 2 || message[0] !== INTEREST_FORMAT) return new Error('not an interest message');
  const idEnd = 2 + message[1]!;
  if (idEnd + 9 > message.length) return new Error('interest message cut short');
  const instance = message.toString('utf8', 2, idEnd);
  const op = OPS[message[idEnd]!];
  if (!op) return new Error(`interest message with unknown operation ${message[idEnd]}`);
  const seq = message.readUInt32BE(idEnd + 1);
  const count = message.readUInt32BE(idEnd + 5);
  // Each filter takes at least 2 bytes: a count the message cannot hold is refused before any loop.
  if (count > (message.length - idEnd - 9) / 2) return new Error('interest message cut short');
  const filters: string[] = [];
  let at = idEnd + 9;
  for (let k = 0; k < count; k++) {
    if (at + 2 > message.length) return new Error('interest message cut short');
    const end = at + 2 + message.readUInt16BE(at);
    if (end > message.length) return new Error('interest message cut short');
    filters.push(message.toString('utf8', at + 2, end));
    at = end;
  }
  if (at !== message.length) return new Error('interest message with bytes after its last filter');
  return { instance, op, seq, filters };
}

/** Topics whose answer wants() keeps before starting over (a fleet publishing on endless topics stays bounded). */
export const INTEREST_CACHE_LIMIT = 10_000;

/** The other nodes' filters, as their announcements told them. */
export class RemoteInterest {
  private readonly nodes = new Map<string, { filters: Set<string>; heard: number }>();
  /** filter -> how many nodes hold it; a filter is in the matcher while its count is above 0. */
  private readonly counts = new Map<string, number>();
  private readonly matcher = newMatcher();
  private readonly answers = new Map<string, boolean>();

  /** Applies one node's announcement (heard at `now`); returns whether what any node wants changed. */
  apply(message: InterestMessage, now: number): boolean {
    if (message.op === 'ack') return false; // answers one node's add (stream-emitter.ts); nothing to change here
    let node = this.nodes.get(message.instance);
    if (!node) this.nodes.set(message.instance, (node = { filters: new Set(), heard: now }));
    node.heard = now;
    let changed = false;
    const wanted = message.filters.filter(routedFilter);
    if (message.op === 'state') {
      const next = new Set(wanted);
      for (const filter of node.filters) if (!next.has(filter)) changed = this.drop(node.filters, filter) || changed;
      for (const filter of next) if (!node.filters.has(filter)) changed = this.take(node.filters, filter) || changed;
    } else if (message.op === 'add') {
      for (const filter of wanted) if (!node.filters.has(filter)) changed = this.take(node.filters, filter) || changed;
    } else {
      for (const filter of wanted) if (node.filters.has(filter)) changed = this.drop(node.filters, filter) || changed;
    }
    if (changed) this.answers.clear();
    return changed;
  }

  /** Forgets nodes not heard from since `before` (stopped or cut off); returns their instances. */
  expire(before: number): string[] {
    const gone: string[] = [];
    for (const [instance, node] of this.nodes) {
      if (node.heard >= before) continue;
      for (const filter of [...node.filters]) this.drop(node.filters, filter);
      this.nodes.delete(instance);
      gone.push(instance);
    }
    if (gone.length) this.answers.clear();
    return gone;
  }

  /** Does another node have a subscriber whose filter matches `topic`? */
  wants(topic: string): boolean {
    let answer = this.answers.get(topic);
    if (answer === undefined) {
      answer = this.counts.size > 0 && this.matcher.test(topic);
      if (this.answers.size >= INTEREST_CACHE_LIMIT) this.answers.clear();
      this.answers.set(topic, answer);
    }
    return answer;
  }

  /** The other nodes heard from since `since`. */
  nodesHeardSince(since: number): string[] {
    return [...this.nodes].filter(([, node]) => node.heard >= since).map(([instance]) => instance);
  }

  /** The other nodes heard from, and how many filters each holds (cluster status, tests). */
  get nodeFilters(): Map<string, number> {
    return new Map([...this.nodes].map(([instance, node]) => [instance, node.filters.size]));
  }

  private take(filters: Set<string>, filter: string): boolean {
    filters.add(filter);
    const count = (this.counts.get(filter) ?? 0) + 1;
    this.counts.set(filter, count);
    if (count === 1) this.matcher.add(filter);
    return count === 1;
  }

  private drop(filters: Set<string>, filter: string): boolean {
    filters.delete(filter);
    const count = (this.counts.get(filter) ?? 1) - 1;
    if (count > 0) {
      this.counts.set(filter, count);
      return false;
    }
    this.counts.delete(filter);
    this.matcher.remove(filter);
    return true;
  }
}

function newMatcher(): TopicTest {
  return new QlobberTrue({ match_empty_levels: true, separator: '/', wildcard_one: '+', wildcard_some: '#' });
}
