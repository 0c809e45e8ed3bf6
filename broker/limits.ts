/**
 * What one client may consume of the broker, and the bookkeeping that enforces it. Pure logic with an injectable
 * clock: every structure here is bounded, because an attacker chooses its keys (source addresses, topics).
 */

export interface RateRule {
  /** Attempts allowed per window ... */
  max: number;
  windowMs: number;
  /** ... after which the key is refused for this long (EMQX's flapping detection works the same way). */
  banMs: number;
}

export interface RetainedLimits {
  /** Retained messages one device may hold. */
  perDevice: number;
  /** Bytes (topic + payload) of retained messages one device may hold. */
  bytesPerDevice: number;
  /** Retained messages from all devices together. */
  total: number;
  totalBytes: number;
}

export interface BrokerLimits {
  /** Largest MQTT packet (remaining length, i.e. after the fixed header) read from a client. */
  maxPacketBytes: number;
  /** Open MQTT connections in all (server.maxConnections). */
  maxConnections: number;
  /** Open MQTT connections from one source address (devices behind one NAT share an address: keep it generous). */
  maxConnectionsPerSource: number;
  /** Open connections with one certificate identity (a device using client ids `id:a`, `id:b` has several). */
  maxConnectionsPerIdentity: number;
  /**
   * Topic filters one connection may hold (a persistent session's restored filters count). A SUBSCRIBE past it gets
   * SUBACK 0x80 for the filters over the limit; the session stays up.
   */
  maxSubscriptionsPerConnection: number;
  /**
   * Bytes the broker holds for one connection that does not read them (a frozen app, a slow link, an attacker with a
   * good score). From there on its QoS 0 deliveries are dropped, and a QoS 1 delivery closes the connection (a
   * persistent session gets the message again when it reconnects). Nobody else's deliveries wait for it.
   */
  maxBufferedBytesPerConnection: number;
  /** A connection whose buffered bytes have not drained within this time is closed. */
  drainTimeoutMs: number;
  /**
   * QoS 1 messages held for one persistent session: queued while it is away, and sent but not yet acknowledged
   * while it is connected (Mosquitto's max_queued_messages). Past it, new messages are not queued for that session
   * (a connected one still gets them live, at most once).
   */
  maxQueuedMessagesPerSession: number;
  /** Time for a new connection to finish the TLS handshake. */
  handshakeTimeoutMs: number;
  /** Time after the handshake for the client to send CONNECT. */
  connectTimeoutMs: number;
  /** New connections per source address. */
  sourceConnectRate: RateRule;
  /** Accepted connections per certificate identity (a device reconnecting in a tight loop is banned for a while). */
  identityConnectRate: RateRule;
  retained: RetainedLimits;
  /** Telemetry a quarantined or unclaimed device may publish per window (its only permitted publish). */
  restrictedTelemetry: { max: number; windowMs: number };
}

export const DEFAULT_LIMITS: BrokerLimits = {
  maxPacketBytes: 2 * 1024 * 1024,
  maxConnections: 50_000,
  maxConnectionsPerSource: 1_000,
  maxConnectionsPerIdentity: 8,
  maxSubscriptionsPerConnection: 100,
  maxBufferedBytesPerConnection: 1024 * 1024,
  drainTimeoutMs: 60_000,
  maxQueuedMessagesPerSession: 1000,
  handshakeTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  sourceConnectRate: { max: 300, windowMs: 10_000, banMs: 60_000 },
  identityConnectRate: { max: 15, windowMs: 60_000, banMs: 300_000 },
  retained: { perDevice: 100, bytesPerDevice: 1024 * 1024, total: 100_000, totalBytes: 256 * 1024 * 1024 },
  restrictedTelemetry: { max: 10, windowMs: 60_000 },
};

/** `DEFAULT_LIMITS` with some fields replaced (one level deep for the nested rules). */
export function resolveLimits(partial: DeepPartial<BrokerLimits> = {}): BrokerLimits {
  const d = DEFAULT_LIMITS;
  return {
    ...d,
    ...(partial as Partial<BrokerLimits>),
    sourceConnectRate: { ...d.sourceConnectRate, ...partial.sourceConnectRate },
    identityConnectRate: { ...d.identityConnectRate, ...partial.identityConnectRate },
    retained: { ...d.retained, ...partial.retained },
    restrictedTelemetry: { ...d.restrictedTelemetry, ...partial.restrictedTelemetry },
  };
}

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? Partial<T[K]> : T[K] };

/** Drops the oldest keys of a Map past `max` (Maps iterate in insertion order). */
function bound<K, V>(map: Map<K, V>, max: number): void {
  for (const key of map.keys()) {
    if (map.size <= max) return;
    map.delete(key);
  }
}

interface Window {
  start: number;
  count: number;
  bannedUntil: number;
}

/** Counts attempts per key in fixed windows and bans a key that goes over for `banMs`. */
export class RateLimiter {
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly rule: RateRule,
    private readonly now: () => number = Date.now,
    private readonly maxKeys = 100_000,
  ) {}

  /** Records one attempt by `key`: 0 when allowed, else how many ms the key remains refused. */
  hit(key: string): number {
    const now = this.now();
    let w = this.windows.get(key);
    if (w && w.bannedUntil > now) return w.bannedUntil - now;
    // A new window when the last one ended, or when a ban has just run out (the banned window's count is spent).
    if (!w || now - w.start >= this.rule.windowMs || w.bannedUntil > 0) {
      this.windows.delete(key); // re-insert: the map's order is then the order of last window start
      this.windows.set(key, (w = { start: now, count: 0, bannedUntil: 0 }));
      bound(this.windows, this.maxKeys);
    }
    w.count++;
    if (w.count > this.rule.max) {
      if (this.rule.banMs <= 0) return Math.max(1, w.start + this.rule.windowMs - now);
      w.bannedUntil = now + this.rule.banMs;
      return this.rule.banMs;
    }
    return 0;
  }

  /** Forgets windows that ended and bans that expired. */
  prune(): void {
    const now = this.now();
    for (const [key, w] of this.windows) {
      if (w.bannedUntil <= now && now - w.start >= this.rule.windowMs) this.windows.delete(key);
    }
  }

  get size(): number {
    return this.windows.size;
  }
}

/** Open things per key (connections per source or identity); keys disappear at zero. */
export class OpenCounter {
  private readonly counts = new Map<string, number>();

  count(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  open(key: string): number {
    const n = this.count(key) + 1;
    this.counts.set(key, n);
    return n;
  }

  close(key: string): void {
    const n = this.count(key) - 1;
    if (n > 0) this.counts.set(key, n);
    else this.counts.delete(key);
  }

  get size(): number {
    return this.counts.size;
  }
}

/**
 * Who holds which retained message, so retained storage per device and in all stays bounded. The ledger follows
 * the broker's own rule: a retained publish replaces the topic's message, an empty one deletes it.
 */
/** What the broker asks before it stores a device's retained publish: the ledger here, or one in Redis for a cluster. */
export interface RetainedAdmission {
  /** Checks a retained publish of `payloadBytes` by `device` and records it; resolves to why it is refused, if it is. */
  admit(device: string, topic: string, payloadBytes: number): string | undefined | Promise<string | undefined>;
  /** Retained messages (and their bytes) held for `device`, or for all devices. */
  held(device?: string): { count: number; bytes: number } | Promise<{ count: number; bytes: number }>;
  close?(): void;
}

/** Why a retained publish is refused, by the limit it would break (shared by both ledgers). */
export const retainedRefusal = {
  perDevice: (l: RetainedLimits) => `retained message limit: a device may hold ${l.perDevice} retained messages`,
  bytesPerDevice: (l: RetainedLimits) => `retained message limit: a device may hold ${l.bytesPerDevice} bytes of retained messages`,
  total: (l: RetainedLimits) => `retained message limit: the broker holds at most ${l.total} retained messages`,
  totalBytes: (l: RetainedLimits) => `retained message limit: the broker holds at most ${l.totalBytes} bytes of retained messages`,
};

export class RetainedLedger implements RetainedAdmission {
  private readonly topics = new Map<string, { device: string; bytes: number }>();
  private readonly devices = new Map<string, { count: number; bytes: number }>();
  private totalBytes = 0;

  constructor(private readonly limits: RetainedLimits) {}

  /** Checks a retained publish of `payloadBytes` by `device` and records it; returns why it is refused, if it is. */
  admit(device: string, topic: string, payloadBytes: number): string | undefined {
    const previous = this.topics.get(topic);
    if (payloadBytes === 0) {
      if (previous) this.remove(topic, previous);
      return undefined;
    }
    const bytes = Buffer.byteLength(topic) + payloadBytes;
    const mine = this.devices.get(device) ?? { count: 0, bytes: 0 };
    const replacesOwn = previous?.device === device;
    const count = mine.count + (replacesOwn ? 0 : 1);
    const deviceBytes = mine.bytes + bytes - (replacesOwn ? previous.bytes : 0);
    const l = this.limits;
    if (count > l.perDevice) return retainedRefusal.perDevice(l);
    if (deviceBytes > l.bytesPerDevice) return retainedRefusal.bytesPerDevice(l);
    if (this.topics.size + (previous ? 0 : 1) > l.total) return retainedRefusal.total(l);
    if (this.totalBytes + bytes - (previous?.bytes ?? 0) > l.totalBytes) return retainedRefusal.totalBytes(l);
    if (previous) this.remove(topic, previous);
    this.topics.set(topic, { device, bytes });
    const entry = this.devices.get(device) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += bytes;
    this.devices.set(device, entry);
    this.totalBytes += bytes;
    return undefined;
  }

  private remove(topic: string, previous: { device: string; bytes: number }): void {
    this.topics.delete(topic);
    this.totalBytes -= previous.bytes;
    const owner = this.devices.get(previous.device)!;
    owner.count--;
    owner.bytes -= previous.bytes;
    if (owner.count === 0) this.devices.delete(previous.device);
  }

  /** Retained messages (and their bytes) held for `device`, or for all devices. */
  held(device?: string): { count: number; bytes: number } {
    if (device === undefined) return { count: this.topics.size, bytes: this.totalBytes };
    return { ...(this.devices.get(device) ?? { count: 0, bytes: 0 }) };
  }
}
