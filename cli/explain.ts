/**
 * `wott policy explain`: the decision the running broker would make. The live score is read the way any component
 * reads it (the retained wott/v1/scores/{device} message, over MQTT with an admin certificate); device state comes
 * from the inventory; the rules from the same wott.yaml the gateway uses.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import type { FleetService } from '../fleet/index.js';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { PRIVATE_KEY_MODE } from '../lib/private.js';
import { staticTrustSource, WottPlugin } from '../broker/index.js';
import { stateCeiling, type Action } from '../policy/index.js';
import { assertDeviceId, parseMessage, scoreMessageSchema, topics } from '../protocol/index.js';
import type { WottConfig } from './config.js';

export interface Explanation {
  device: string;
  topic: string;
  action: Action;
  state?: string;
  score: number;
  scoreSource: string;
  rule?: string;
  threshold?: number;
  allowed: boolean;
  reason: string;
}

/** An admin certificate for the CLI, kept in the data folder and reissued when near expiry. */
export async function adminCredentials(fleet: FleetService, dataDir: string): Promise<{ key: string; cert: string }> {
  const dir = join(dataDir, 'admin');
  const keyPath = join(dir, 'admin.key');
  const certPath = join(dir, 'admin.crt');
  if (existsSync(keyPath) && existsSync(certPath)) {
    const cert = new X509Certificate(readFileSync(certPath));
    if (Date.parse(cert.validTo) - Date.now() > 86_400_000) return { key: readFileSync(keyPath, 'utf8'), cert: readFileSync(certPath, 'utf8') };
  }
  const issued = await fleet.issueService('admin', 'cli');
  writeFileAtomic(keyPath, issued.keyPem, PRIVATE_KEY_MODE);
  writeFileAtomic(certPath, issued.pem);
  return { key: issued.keyPem, cert: issued.pem };
}

/** The retained score of `device` from the gateway, or undefined when there is none (or no gateway). */
async function liveScore(fleet: FleetService, dataDir: string, device: string, port: number): Promise<{ score?: number; source: string }> {
  const { key, cert } = await adminCredentials(fleet, dataDir);
  let client: mqtt.MqttClient | undefined;
  try {
    client = await mqtt.connectAsync(`mqtts://localhost:${port}`, {
      key,
      cert,
      ca: fleet.caCertificates().map((c) => c.toString()),
      clientId: `admin:cli:${process.pid}`,
      reconnectPeriod: 0,
      connectTimeout: 3000,
    });
  } catch (err) {
    return { source: `gateway not reachable on port ${port} (${(err as Error).message}); assuming no score yet` };
  }
  try {
    const score = await new Promise<number | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), 1000);
      client!.on('message', (_topic, payload) => {
        try {
          resolve(parseMessage(scoreMessageSchema, payload).score);
          clearTimeout(timer);
        } catch {
          // malformed: keep waiting for the timeout
        }
      });
      client!.subscribe(topics.scores(device), { qos: 0 });
    });
    return score === undefined ? { source: 'no score published yet: initial score' } : { score, source: 'live score from the gateway' };
  } finally {
    await client.endAsync();
  }
}

export async function explainDecision(
  fleet: FleetService,
  dataDir: string,
  config: WottConfig,
  device: string,
  topic: string,
  action: Action,
  mqttPort: number,
): Promise<Explanation> {
  assertDeviceId(device);
  const state = (await fleet.show(device))?.state;
  const live = await liveScore(fleet, dataDir, device, mqttPort);
  const plugin = new WottPlugin({
    policies: config.policies,
    initialScore: config.scoring.initialScore,
    trust: staticTrustSource(state ? { [device]: state } : {}),
  });
  try {
    if (live.score !== undefined) plugin.setScore(device, live.score);
    const decision = plugin.explain(device, topic, action);
    const cap = stateCeiling(state);
    return {
      device,
      topic,
      action,
      state,
      score: decision.score,
      scoreSource: cap ? `${live.source}; capped at ${cap.ceiling} because the device is ${state}` : live.source,
      rule: decision.rule?.topic,
      threshold: decision.threshold,
      allowed: decision.allowed,
      reason: decision.reason,
    };
  } finally {
    plugin.close();
  }
}
