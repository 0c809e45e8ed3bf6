/**
 * Telemetry publishing over MQTT with mTLS. Reports wait in a bounded queue and leave it only when the broker has
 * acknowledged them (QoS 1), so moving to a renewed certificate (a new connection) loses nothing.
 */
import mqtt from 'mqtt';
import { topics, type Telemetry } from '../protocol/index.js';
import type { Identity } from './store.js';
import type { Logger } from './renewal.js';

export interface PublisherOptions {
  /** One broker, or several tried in turn on each reconnect (a cluster's nodes). */
  urls: string[];
  caPem: string;
  device: string;
  identity: Identity;
  log: Logger;
  maxQueue?: number;
  /** Called after a report has been acknowledged by the broker. */
  onDelivered?: (report: Telemetry) => void;
}

export class TelemetryPublisher {
  private client: mqtt.MqttClient;
  private readonly queue: Telemetry[] = [];
  private pumping = false;
  private closed = false;
  delivered = 0;

  constructor(private readonly options: PublisherOptions) {
    this.client = this.connect(options.identity);
  }

  private connect(identity: Identity): mqtt.MqttClient {
    const [first, ...more] = this.options.urls.map((u) => new URL(u));
    const client = mqtt.connect(first!.href, {
      // MQTT.js moves to the next of `servers` on every reconnect.
      ...(more.length
        ? { servers: [first!, ...more].map((u) => ({ host: u.hostname, port: Number(u.port || 8883), protocol: u.protocol.replace(':', '') as 'mqtts' })) }
        : {}),
      key: identity.keyPem,
      cert: identity.certPem,
      ca: this.options.caPem,
      clientId: this.options.device,
      protocolVersion: 4,
      reconnectPeriod: 5000,
      connectTimeout: 15_000,
    });
    client.on('connect', () => {
      this.options.log.info({ broker: `${client.options.host ?? client.options.hostname}:${client.options.port}` }, 'MQTT connected');
      void this.pump();
    });
    client.on('error', (err) => this.options.log.warn({ err: err.message }, 'MQTT error'));
    return client;
  }

  /** Moves to a new certificate: the new connection replaces the old one once it is up. */
  setIdentity(identity: Identity): void {
    const old = this.client;
    const next = this.connect(identity);
    next.once('connect', () => {
      this.client = next;
      old.end(true);
      void this.pump();
    });
  }

  enqueue(report: Telemetry): void {
    this.queue.push(report);
    const max = this.options.maxQueue ?? 1000;
    while (this.queue.length > max) this.queue.shift(); // oldest first: a newer report supersedes it
    void this.pump();
  }

  get pending(): number {
    return this.queue.length;
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.queue.length && !this.closed) {
        const client = this.client;
        if (!client.connected) break;
        const report = this.queue[0]!;
        try {
          await publishOrClose(client, topics.telemetry(this.options.device), JSON.stringify(report));
        } catch (err) {
          this.options.log.warn({ err: (err as Error).message }, 'publish failed; will retry');
          break;
        }
        if (this.queue[0] === report) this.queue.shift();
        this.delivered++;
        this.options.onDelivered?.(report);
      }
    } finally {
      this.pumping = false;
    }
  }

  /** Resolves once every queued report has been acknowledged (or rejects after `timeoutMs`). */
  async flush(timeoutMs = 30_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.queue.length) {
      if (Date.now() > until) throw new Error(`${this.queue.length} report(s) not acknowledged within ${timeoutMs} ms`);
      void this.pump();
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    // Forced: a client that is between reconnects would otherwise wait for a connection that is no longer wanted.
    await this.client.endAsync(true);
  }
}

/**
 * A QoS 1 publish that also fails when the connection closes: MQTT.js keeps an unacknowledged message for its own
 * reconnect, so the promise can stay pending forever once we have replaced (and ended) that client. Our queue
 * resends the report on the current connection instead (scoring drops duplicates by report id).
 */
function publishOrClose(client: mqtt.MqttClient, topic: string, payload: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onClose = () => reject(new Error('connection closed before the broker acknowledged'));
    client.once('close', onClose);
    client.publish(topic, payload, { qos: 1 }, (err) => {
      client.off('close', onClose);
      if (err) reject(err);
      else resolve();
    });
  });
}
