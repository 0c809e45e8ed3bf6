/**
 * The cluster's message bus on a Redis Stream: an mqemitter (what Aedes takes as `mq`) whose messages survive a Redis
 * restart. mqemitter-redis used Redis pub/sub, which keeps nothing: a QoS 1 message acknowledged while Redis restarted
 * could miss the other nodes. Here:
 * - `emit` delivers to this node's subscribers at once and appends the packet to the stream (`XADD wott:bus MAXLEN ~ N`);
 *   it calls back only when Redis has stored it, so Aedes sends PUBACK after that. While Redis is down ioredis' offline
 *   queue holds the XADD and the publisher waits.
 * - each node reads the stream (`XREAD BLOCK`) on a connection of its own from the last id it has seen, skips the
 *   entries it wrote itself and hands the others to a local mqemitter, which matches topics. Delivering own messages
 *   locally at publish (rather than only from the stream) keeps same-node latency off Redis, and same-node delivery
 *   working while Redis is down.
 * - after a reconnect the node reads on from its last id, so what other nodes appended meanwhile (their publishers
 *   were waiting for Redis) still arrives. If Redis came back without the stream, or with less of it than this node had
 *   read (no persistence, a lagging replica), it reads what is there now: those entries were written after the loss.
 * The stream is trimmed to about `maxLength` entries (Redis memory stays bounded); an entry holds the packets published
 * in one turn of the event loop (up to 100). A node that falls further behind than that loses the trimmed entries,
 * and says so.
 *
 * QoS 0 messages of devices (QoS 0, outside the wott/ namespace and $-topics) take another way: Redis pub/sub on
 * a channel of the publishing node's own (`{key}:qos0:{instance}`), and the publisher is not held until Redis
 * answers. Each node listens to every channel but its own (otherNodesPatterns), so a node's own messages, delivered
 * here at publish, do not come back: with one shared channel every node received, parsed and dropped a second copy
 * of everything it published, doubling Redis' pub/sub output and the publishing node's input (bench cluster). QoS 0 promises at most once, so there is nothing to
 * acknowledge and nothing to keep; on the stream every one of them cost an append to Redis' append-only file, and
 * with `appendfsync always` an fsync that both the publisher's next packets and every other node's read waited for
 * (measured: bench/cluster.ts). A pub/sub message is written to no file, so it is not held behind an fsync unless
 * Redis has a write to sync in the same turn. Order is kept where MQTT asks for it (per topic and QoS, [MQTT-4.6.0-6]):
 * all QoS 0 messages of a topic take the same way, in order. What stays on the stream: QoS 1 and 2 (acknowledged:
 * they must survive a Redis restart), and the gateway's own traffic (scores, events, telemetry, $SYS takeover
 * notices), whatever its QoS, which the cluster relies on. Lost while Redis is away: QoS 0 messages of devices
 * between nodes (subscribers on the publisher's node still get them). And a QoS 0 message goes to Redis only when
 * another node has a subscriber for it (bus-interest.ts: the nodes announce their filters on their channels).
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { Redis, type RedisOptions } from 'ioredis';
import { isProtocolTopic } from '../protocol/index.js';
import { compareIds, decodeEntry, decodeMessage, encodeEntry, encodeMessage, messageInstance, type BusPacket } from './bus-entry.js';
import { decodeInterest, encodeInterest, INTEREST_FORMAT, RemoteInterest, routedFilter, type InterestOp } from './bus-interest.js';

const require = createRequire(import.meta.url);
type Listener = (packet: BusPacket, done: () => void) => void;
interface LocalEmitter {
  current: number;
  concurrency: number;
  closed: boolean;
  on(topic: string, listener: Listener, done?: () => void): unknown;
  removeListener(topic: string, listener: Listener, done?: () => void): unknown;
  emit(packet: BusPacket, done?: (err?: Error) => void): unknown;
  close(done: () => void): unknown;
}
// CommonJS `module.exports = fn`: through require, as Aedes' own default mq is made.
const mqemitter = require('mqemitter') as (opts: Record<string, unknown>) => LocalEmitter;

class ConnectionLost extends Error {
  constructor() {
    super('cluster bus: the reader lost its connection to Redis');
  }
}

export const DEFAULT_BUS_KEY = 'wott:bus';
export const DEFAULT_BUS_MAX_LENGTH = 100_000;
/** At most this many packets share one stream entry (or one pub/sub message). */
const MAX_PACKETS_PER_ENTRY = 100;
/** QoS 0 packets handed to Redis and not answered yet, past which QoS 0 publishers wait for Redis too. */
export const DEFAULT_QOS0_IN_FLIGHT = 10_000;

/** Escapes Redis glob metacharacters (`* ? [ ] \\ ^ -`), so `text` matches only itself, in a pattern or in brackets. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\^-]/g, (c) => `\\${c}`);
}

/**
 * PSUBSCRIBE patterns that match the channel `prefix + id` of every id of `own`'s length but `own` itself, each such
 * channel exactly once: pattern i says "the same first i characters, then not own's character i". Two ids that
 * differ first at position i match pattern i only, so a message arrives once, not once per matching pattern. Why
 * patterns: Redis has no "all channels but mine" and pub/sub no "not to myself"; patterns need no list of the
 * other nodes, so a node that joins is heard as soon as it publishes, with no discovery to race against.
 */
export function otherNodesPatterns(prefix: string, own: string): string[] {
  const base = globEscape(prefix);
  return Array.from(own, (c, i) => `${base}${globEscape(own.slice(0, i))}[^${globEscape(c)}]*`);
}

/** A device's QoS 0 message: it crosses nodes over pub/sub (see above); anything else over the stream. */
export function isLightPacket(packet: BusPacket): boolean {
  return packet.qos === 0 && !packet.topic.startsWith('$') && !isProtocolTopic(packet.topic);
}

export interface StreamEmitterOptions {
  /** ioredis connection options (redisConnectionOptions() from a URL). */
  connection: RedisOptions;
  /** The stream's key (default wott:bus). */
  key?: string;
  /** About how many entries the stream keeps (XADD MAXLEN ~; default 100,000); an entry holds 1 to 100 packets. */
  maxLength?: number;
  /** Entries read per XREAD (default 1,000). */
  batch?: number;
  /** QoS 0 packets sent over pub/sub and not yet answered by Redis, past which QoS 0 publishers wait (default 10,000). */
  qos0InFlight?: number;
  /** How often each node announces its whole set of topic filters (default 10 s; bus-interest.ts). */
  interestHeartbeatMs?: number;
  /** How long a subscription waits for the other nodes to confirm they know it, at most (default 1 s). */
  interestAckTimeoutMs?: number;
  /** Connection errors (Redis down or restarting; both connections reconnect by themselves) and bus anomalies. */
  onError?: (err: Error) => void;
}

export const DEFAULT_INTEREST_HEARTBEAT_MS = 10_000;
export const DEFAULT_INTEREST_ACK_TIMEOUT_MS = 1000;

export class StreamEmitter {
  /** Tells this emitter's entries from other nodes' (a node id could repeat across restarts; this does not). */
  readonly instance = randomBytes(9).toString('base64url');
  readonly key: string;
  /** The pub/sub channel of this node's QoS 0 messages (`{key}:qos0:{instance}`). */
  readonly channel: string;
  /** The patterns of the other nodes' channels, which this node listens to. */
  readonly listening: readonly string[];
  readonly maxLength: number;
  /** Resolves once the reader knows where the stream ends (it reads only what is appended after). */
  readonly ready: Promise<void>;
  private readonly local: LocalEmitter;
  private readonly writer: Redis;
  private readonly reader: Redis;
  /** Subscribed to the other nodes' channels (a connection in subscriber mode can do nothing else). */
  private readonly subscriber: Redis;
  private readonly batch: number;
  private readonly qos0Limit: number;
  private readonly onError: (err: Error) => void;
  /** The last id read; undefined until the first position is known. */
  private position: string | undefined;
  /** Set after a read failed (a reconnect, most likely): check the stream before reading on. */
  private resync = true;
  private closing = false;
  private readonly loop: Promise<void>;
  /** Published here, not yet sent to Redis (sent together at the next turn of the event loop). */
  private readonly pending: Array<{ packet: BusPacket; callback: (err?: Error) => void }> = [];
  /** QoS 0 packets for the channel, not yet sent, and their publishers' callbacks. */
  private readonly light: BusPacket[] = [];
  private readonly lightCallbacks: Array<(err?: Error) => void> = [];
  /** QoS 0 packets sent and not answered; callbacks held while that is over the limit. */
  private lightInFlight = 0;
  private readonly held: Array<(err?: Error) => void> = [];
  private flushScheduled = false;
  /** Fails the read in flight when the reader's connection closes. */
  private readCut: ((err: Error) => void) | undefined;
  /** This node's topic filters that can match a device's QoS 0 message, and how many local listeners each has. */
  private readonly localFilters = new Map<string, number>();
  /** Announcements of new filters on their way to Redis: a second subscriber to the same filter waits for it too. */
  private readonly announcing = new Map<string, Promise<void>>();
  /** What the other nodes subscribe to (bus-interest.ts). */
  private readonly remote = new RemoteInterest();
  /** Until then every QoS 0 message goes to Redis: the other nodes' filters are not all known yet. */
  private sendAllUntil: number;
  private readonly heartbeatMs: number;
  private readonly ackTimeoutMs: number;
  private readonly heartbeat: NodeJS.Timeout;
  /** The last `add` announced, and the adds waiting for the other nodes' acks (seq -> nodes yet to answer). */
  private addSeq = 0;
  private readonly awaitingAcks = new Map<number, { pending: Set<string>; done: () => void }>();

  constructor(options: StreamEmitterOptions) {
    this.key = options.key ?? DEFAULT_BUS_KEY;
    this.maxLength = options.maxLength ?? DEFAULT_BUS_MAX_LENGTH;
    this.channel = `${this.key}:qos0:${this.instance}`;
    this.listening = otherNodesPatterns(`${this.key}:qos0:`, this.instance);
    this.batch = options.batch ?? 1000;
    this.qos0Limit = options.qos0InFlight ?? DEFAULT_QOS0_IN_FLIGHT;
    this.onError = options.onError ?? (() => undefined);
    this.heartbeatMs = options.interestHeartbeatMs ?? DEFAULT_INTEREST_HEARTBEAT_MS;
    this.ackTimeoutMs = options.interestAckTimeoutMs ?? DEFAULT_INTEREST_ACK_TIMEOUT_MS;
    this.sendAllUntil = Infinity; // until the subscriber is ready, then for a round of heartbeats
    // MQTT's wildcards, with `#` matching the parent level too [MQTT-4.7.1-3], as Aedes' default mq.
    this.local = mqemitter({ matchEmptyLevels: true });
    this.writer = new Redis({ ...options.connection, enableAutoPipelining: true, lazyConnect: false });
    // A blocking XREAD cut off by a lost connection is not re-sent (its position may have to change); ioredis then
    // leaves its promise pending for ever, so the read loop races it against the connection's 'close'.
    this.reader = new Redis({ ...options.connection, autoResendUnfulfilledCommands: false });
    this.reader.on('close', () => {
      this.resync = true;
      this.readCut?.(new ConnectionLost());
    });
    // Without listeners ioredis prints connection errors itself; the caller logs them (throttled).
    const report = (err: Error) => {
      if (!this.closing) this.onError(err);
    };
    // Resubscribes by itself after a reconnect (ioredis' autoResubscribe); what was published meanwhile is gone.
    this.subscriber = new Redis({ ...options.connection });
    this.subscriber.on('pmessageBuffer', (_pattern: Buffer, channel: Buffer, message: Buffer) => this.deliverLight(channel, message));
    // While this node hears nothing, it cannot know what the others want: it sends them everything until a full round
    // of their heartbeats could have arrived again (announcements made meanwhile are lost with pub/sub).
    this.subscriber.on('close', () => (this.sendAllUntil = Infinity));
    this.subscriber.on('ready', () => (this.sendAllUntil = Date.now() + 1.5 * this.heartbeatMs));
    // Its own set goes out again when its writer is back (Redis restarted: the others forgot it, or missed changes).
    this.writer.on('ready', () => this.announce('state', this.localFilters.keys()));
    this.heartbeat = setInterval(() => {
      this.announce('state', this.localFilters.keys());
      this.remote.expire(Date.now() - 3 * this.heartbeatMs);
    }, this.heartbeatMs);
    this.heartbeat.unref();
    this.writer.on('error', report);
    this.reader.on('error', report);
    this.subscriber.on('error', report);
    let started!: () => void;
    const reading = new Promise<void>((resolve) => (started = resolve));
    const subscribed = this.subscriber.psubscribe(...this.listening).then(
      () => undefined,
      (err: Error) => report(err),
    );
    this.ready = Promise.all([reading, subscribed]).then(() => undefined);
    this.loop = this.read(started);
  }

  get current(): number {
    return this.local.current;
  }

  get concurrency(): number {
    return this.local.concurrency;
  }

  get closed(): boolean {
    return this.local.closed;
  }

  /**
   * Subscribes `listener` here. A filter that can match a device's QoS 0 message and is new on this node is announced
   * to the other nodes first: `done` (after which Aedes sends SUBACK) waits until they confirmed they applied it
   * (announceAdd), so a message published anywhere after the SUBACK is sent to this node. With Redis away it does not
   * wait (nothing crosses nodes then; the heartbeat after the reconnect announces it).
   */
  on(topic: string, listener: Listener, done?: () => void): this {
    this.local.on(topic, listener);
    let waitFor: Promise<void> | undefined;
    if (routedFilter(topic)) {
      const count = (this.localFilters.get(topic) ?? 0) + 1;
      this.localFilters.set(topic, count);
      if (count === 1) {
        const announced = this.announceAdd(topic);
        if (announced) {
          const settled = announced.finally(() => this.announcing.get(topic) === settled && this.announcing.delete(topic));
          this.announcing.set(topic, settled);
        }
      }
      waitFor = this.announcing.get(topic);
    }
    if (done) {
      if (waitFor) void waitFor.then(done);
      else setImmediate(done);
    }
    return this;
  }

  removeListener(topic: string, listener: Listener, done?: () => void): this {
    this.local.removeListener(topic, listener, done);
    const count = this.localFilters.get(topic);
    if (count !== undefined) {
      if (count > 1) this.localFilters.set(topic, count - 1);
      else {
        this.localFilters.delete(topic);
        void this.announce('remove', [topic]);
      }
    }
    return this;
  }

  /** The other nodes heard from and how many routed filters each announced (cluster status; tests). */
  get otherNodesInterest(): Map<string, number> {
    return this.remote.nodeFilters;
  }

  /**
   * Announces a new filter; resolves once every other node heard from lately confirmed it applied it, or after
   * ackTimeoutMs (a node that died without a word), never rejects. undefined when Redis is not connected.
   */
  private announceAdd(filter: string): Promise<void> | undefined {
    const seq = (this.addSeq = (this.addSeq + 1) >>> 0);
    const pending = new Set(this.remote.nodesHeardSince(Date.now() - 3 * this.heartbeatMs));
    const published = this.announce('add', [filter], seq);
    if (!published) return undefined;
    if (pending.size === 0) return published.then(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    return new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.ackTimeoutMs);
      timer.unref();
      this.awaitingAcks.set(seq, { pending, done: resolve });
      // Redis could not take it: nobody will answer.
      void published.then((ok) => ok === false && resolve());
    }).finally(() => {
      clearTimeout(timer);
      this.awaitingAcks.delete(seq);
    });
  }

  /**
   * Publishes an announcement on this node's channel, in order with its QoS 0 messages; resolves when Redis answered
   * (false: it failed; never rejects). undefined when Redis is not connected: nothing to wait for.
   */
  private announce(op: InterestOp, filters: Iterable<string>, seq = 0): Promise<void | false> | undefined {
    if (this.closing || this.writer.status !== 'ready') return undefined;
    let message: Buffer;
    try {
      message = encodeInterest(this.instance, op, filters, seq);
    } catch (err) {
      this.onError(err as Error);
      return undefined;
    }
    return this.writer.publish(this.channel, message).then(
      () => undefined,
      (err: Error) => {
        if (!this.closing) this.onError(err);
        return false as const;
      },
    );
  }

  /**
   * Delivers here at once; calls back when Redis has stored the entry (or with the error that kept it from it). A
   * device's QoS 0 packet is called back once it is handed to Redis, at the next turn of the event loop (when more
   * than `qos0InFlight` are unanswered: once Redis has answered enough of them).
   */
  emit(packet: BusPacket, done?: (err?: Error) => void): this {
    const callback = done ?? ((err?: Error) => err && this.onError(err));
    if (this.closing) {
      callback(new Error('the cluster bus is closed'));
      return this;
    }
    this.local.emit(packet);
    // Packets published in the same turn of the event loop go out as one entry: one XADD, one fsync, one read per
    // node, instead of one each (measured: several times the cross-node rate under load).
    if (isLightPacket(packet)) {
      this.light.push(packet);
      this.lightCallbacks.push(callback);
    } else {
      this.pending.push({ packet, callback });
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return this;
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.light.length > 0) {
      const all = this.light.splice(0);
      const callbacks = this.lightCallbacks.splice(0);
      // Only what another node has a subscriber for (delivered here already at emit).
      const packets = Date.now() < this.sendAllUntil ? all : all.filter((p) => this.remote.wants(p.topic));
      for (let i = 0; i < packets.length; i += MAX_PACKETS_PER_ENTRY) {
        const batch = packets.slice(i, i + MAX_PACKETS_PER_ENTRY);
        this.lightInFlight += batch.length;
        this.writer.publish(this.channel, encodeMessage(this.instance, batch)).then(
          () => this.answered(batch.length),
          (err: Error) => {
            if (!this.closing) this.onError(err);
            this.answered(batch.length);
          },
        );
      }
      // Their publishers carry on now (Aedes reads their next packets), unless Redis is too far behind: then they
      // wait as QoS 1 publishers do, and memory stays bounded while Redis is slow or away.
      if (this.lightInFlight <= this.qos0Limit) for (const cb of callbacks) cb();
      else this.held.push(...callbacks);
    }
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, MAX_PACKETS_PER_ENTRY);
      this.writer
        .xadd(this.key, 'MAXLEN', '~', this.maxLength, '*', ...encodeEntry(this.instance, batch.map((p) => p.packet)))
        .then(
          () => batch.forEach((p) => p.callback()),
          (err: Error) => batch.forEach((p) => p.callback(err)),
        );
    }
  }

  private answered(count: number): void {
    this.lightInFlight -= count;
    if (this.held.length > 0 && this.lightInFlight <= this.qos0Limit) for (const cb of this.held.splice(0)) cb();
  }

  close(done?: () => void): this {
    if (this.closing) {
      if (done) void this.loop.then(() => setImmediate(done));
      return this;
    }
    this.flush(); // what was published before close goes out before QUIT
    this.closing = true;
    clearInterval(this.heartbeat);
    for (const cb of this.held.splice(0)) cb(new Error('the cluster bus is closed'));
    this.reader.disconnect();
    // A reader that was reconnecting (Redis restarted a moment ago) emits no 'close' on disconnect, and ioredis keeps
    // the read it queued meanwhile pending for ever: cut it here, or close would wait on the read loop for ever.
    this.readCut?.(new ConnectionLost());
    this.subscriber.disconnect();
    // Appends already sent are answered before QUIT; with Redis away there is nothing to wait for.
    const writerDone = this.writer.status === 'ready' ? this.writer.quit().then(() => undefined, () => undefined) : Promise.resolve(this.writer.disconnect());
    void Promise.all([this.loop, writerDone]).then(() => this.local.close(done ?? (() => undefined)));
    return this;
  }

  private async read(started: () => void): Promise<void> {
    let failures = 0;
    while (!this.closing) {
      try {
        if (this.resync) {
          // Cleared first: a connection lost during the check sets it again.
          this.resync = false;
          await this.checkStream();
          started();
        }
        const reply = (await this.untilCut(this.reader.xreadBuffer('COUNT', this.batch, 'BLOCK', 5000, 'STREAMS', this.key, this.position!))) as
          | Array<[Buffer, Array<[Buffer, Buffer[]]>]>
          | null;
        failures = 0;
        if (!reply) continue;
        for (const [, entries] of reply) {
          for (const [id, fields] of entries) {
            this.position = id.toString();
            this.deliver(fields);
          }
        }
      } catch (err) {
        if (this.closing) break;
        // A lost connection was reported already (the connection's 'error').
        if (!(err instanceof ConnectionLost)) this.onError(err as Error);
        this.resync = true;
        // Commands wait in ioredis' offline queue while Redis is away; this pause only keeps a persistent error (a
        // wrong key type, say) from spinning.
        await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 50 * 2 ** failures++)));
      }
    }
    started();
  }

  /** `command`, or a ConnectionLost if the reader's connection closes first. */
  private async untilCut<T>(command: Promise<T>): Promise<T> {
    const cut = new Promise<never>((_resolve, reject) => (this.readCut = reject));
    try {
      return await Promise.race([command, cut]);
    } finally {
      this.readCut = undefined;
    }
  }

  private deliverLight(channel: Buffer, message: Buffer): void {
    // The patterns leave out this node's own channel already; this cheap check is kept as a second guard.
    if (messageInstance(message) === this.instance) return;
    if (message[0] === INTEREST_FORMAT) {
      const interest = decodeInterest(message);
      if (interest instanceof Error) return void this.onError(new Error(`cluster bus (${channel.toString()}): ${interest.message}; skipped`));
      if (interest.op === 'ack') {
        // An answer to one of our adds (every node hears every ack; the others skip it).
        if (interest.filters[0] !== this.instance) return;
        const waiting = this.awaitingAcks.get(interest.seq);
        if (waiting && waiting.pending.delete(interest.instance) && waiting.pending.size === 0) waiting.done();
        return;
      }
      this.remote.apply(interest, Date.now());
      // Applied: from now on this node sends the sender what its new filter matches. It may answer.
      if (interest.op === 'add') void this.announce('ack', [interest.instance], interest.seq);
      return;
    }
    const entry = decodeMessage(message);
    if (entry instanceof Error) return void this.onError(new Error(`cluster bus (${channel.toString()}): ${entry.message}; skipped`));
    for (const packet of entry.packets) this.local.emit(packet);
  }

  private deliver(fields: Buffer[]): void {
    // Own entries (delivered here at publish) are skipped before any decoding: `n` is written first.
    if (fields[0]?.toString() === 'n' && fields[1]?.toString() === this.instance) return;
    const entry = decodeEntry(fields);
    if (entry instanceof Error) return void this.onError(new Error(`cluster bus (${this.key}): ${entry.message}; skipped`));
    if (entry.instance === this.instance) return; // delivered here when it was published
    for (const packet of entry.packets) this.local.emit(packet);
  }

  /** Where to read from: at start the end of the stream; after a failure on from the last id, unless Redis lost it. */
  private async checkStream(): Promise<void> {
    let info: Map<string, unknown>;
    try {
      const flat = (await this.untilCut(this.reader.call('XINFO', 'STREAM', this.key))) as unknown[];
      info = new Map();
      for (let i = 0; i + 1 < flat.length; i += 2) info.set(String(flat[i]), flat[i + 1]);
    } catch (err) {
      if (!/no such key/i.test((err as Error).message)) throw err;
      // No stream: nothing was written yet, or Redis lost it. Either way whatever appears from now on is new.
      if (this.position !== undefined && this.position !== '0-0') this.onError(new Error(`cluster bus (${this.key}): the stream is gone from Redis (restarted without its data?); reading it from its start`));
      this.position = '0-0';
      return;
    }
    const last = String(info.get('last-generated-id') ?? '0-0');
    if (this.position === undefined) {
      this.position = last;
      return;
    }
    if (compareIds(last, this.position) < 0) {
      // Redis has less than this node read: it lost its tail (no fsync, a lagging replica). What it has beyond `last`
      // is new; entries written since, with a clock set back, could sort before our id.
      this.onError(new Error(`cluster bus (${this.key}): Redis lost entries this node had read (last id ${last} < ${this.position}); reading on from ${last}`));
      this.position = last;
      return;
    }
    const trimmed = info.get('max-deleted-entry-id');
    if (typeof trimmed === 'string' && trimmed !== '0-0' && compareIds(trimmed, this.position) > 0) {
      this.onError(new Error(`cluster bus (${this.key}): entries after ${this.position} were trimmed before this node read them (raise cluster.busMaxLength)`));
    }
  }
}
