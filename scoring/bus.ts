/**
 * How scoring reaches the broker: in-process on the gateway's Aedes, or as an MQTT client with a scoring service
 * certificate when it runs on its own host (`wott scoring --mqtt`).
 */
import type { Aedes, AedesPublishPacket } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';

export interface ScoringBus {
  subscribe(filters: string[], onMessage: (topic: string, payload: Buffer) => void): Promise<void>;
  publish(topic: string, payload: Buffer, retain: boolean): Promise<void>;
  close(): Promise<void>;
}

export function aedesBus(broker: Aedes): ScoringBus {
  const subscriptions: Array<[string, (packet: AedesPublishPacket, cb: () => void) => void]> = [];
  return {
    async subscribe(filters, onMessage) {
      for (const filter of filters) {
        const deliver = (packet: AedesPublishPacket, cb: () => void) => {
          onMessage(packet.topic, Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload));
          cb();
        };
        subscriptions.push([filter, deliver]);
        await new Promise<void>((resolve) => broker.subscribe(filter, deliver, resolve));
      }
    },
    publish(topic, payload, retain) {
      return new Promise((resolve, reject) => {
        if (broker.closed) return reject(new Error('broker closed'));
        broker.publish({ cmd: 'publish', topic, payload, qos: 0, retain, dup: false }, (err) => (err ? reject(err) : resolve()));
      });
    },
    async close() {
      if (broker.closed) return;
      for (const [filter, deliver] of subscriptions) await new Promise<void>((resolve) => broker.unsubscribe(filter, deliver, resolve));
    },
  };
}

export interface MqttBusOptions {
  url: string;
  key: string;
  cert: string;
  ca: string;
  clientId: string;
  /** Defaults to true; tests against a loopback broker with a certificate for "localhost" keep it. */
  rejectUnauthorized?: boolean;
  checkServerIdentity?: () => undefined;
}

/** An MQTT.js client over mutual TLS; QoS 1 both ways, resubscribes after reconnects. */
export async function mqttBus(options: MqttBusOptions): Promise<ScoringBus & { client: MqttClient }> {
  const client = await mqtt.connectAsync(options.url, {
    key: options.key,
    cert: options.cert,
    ca: options.ca,
    clientId: options.clientId,
    rejectUnauthorized: options.rejectUnauthorized ?? true,
    ...(options.checkServerIdentity ? { checkServerIdentity: options.checkServerIdentity } : {}),
    protocolVersion: 4,
    reconnectPeriod: 1000,
    clean: true,
  });
  let handler: ((topic: string, payload: Buffer) => void) | undefined;
  client.on('message', (topic, payload) => handler?.(topic, payload));
  return {
    client,
    async subscribe(filters, onMessage) {
      handler = onMessage;
      const granted = await client.subscribeAsync(filters, { qos: 1 });
      const refused = granted.filter((g) => g.qos === 128);
      if (refused.length) throw new Error(`broker refused scoring's subscription to ${refused.map((g) => g.topic).join(', ')} (is the certificate a scoring service certificate?)`);
    },
    async publish(topic, payload, retain) {
      await client.publishAsync(topic, payload, { qos: 1, retain });
    },
    async close() {
      await client.endAsync();
    },
  };
}
