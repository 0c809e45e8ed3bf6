/**
 * Mosquitto's Dynamic Security control API over an MQTT connection: commands are JSON published to
 * `$CONTROL/dynamic-security/v1` as `{"commands": [...]}`; the plugin answers every command of a message in one
 * message on `$CONTROL/dynamic-security/v1/response` as `{"responses": [{command, error?, data?, correlationData?}]}`.
 * The response topic is shared by every admin client, so each command carries a correlationData of ours.
 */
import { randomBytes } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { CONTROL_ROOT } from './acl.js';

export const DYNSEC_COMMAND_TOPIC = `${CONTROL_ROOT}/dynamic-security/v1`;
export const DYNSEC_RESPONSE_TOPIC = `${DYNSEC_COMMAND_TOPIC}/response`;

export interface DynsecCommand {
  command: string;
  [field: string]: unknown;
}

export interface DynsecResponse {
  command: string;
  /** Present when the command failed, e.g. "Role not found", "Client already exists". */
  error?: string;
  data?: unknown;
  correlationData?: string;
}

export class DynsecError extends Error {
  constructor(
    readonly command: DynsecCommand,
    readonly error: string,
  ) {
    super(`Dynamic Security ${command.command} failed: ${error}`);
    this.name = 'DynsecError';
  }
}

/** Commands per MQTT message: the plugin rewrites its whole JSON file after each one, so huge batches only add latency. */
const BATCH = 100;

export class DynsecControl {
  private readonly pending = new Map<string, { resolve: (r: DynsecResponse) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private readonly prefix = `wott-${randomBytes(4).toString('hex')}-`;
  private counter = 0;

  constructor(
    private readonly client: MqttClient,
    private readonly timeoutMs = 10_000,
  ) {}

  /** Subscribes to the response topic; call after every (re)connect of a clean session. */
  async subscribe(): Promise<void> {
    const granted = await this.client.subscribeAsync(DYNSEC_RESPONSE_TOPIC, { qos: 1 });
    if (granted.some((g) => g.qos > 2)) throw new Error(`not allowed to read ${DYNSEC_RESPONSE_TOPIC}: the sync needs an admin identity`);
  }

  /** Feed every incoming message here; returns true when it was a Dynamic Security response. */
  handle(topic: string, payload: Buffer): boolean {
    if (topic !== DYNSEC_RESPONSE_TOPIC) return false;
    let responses: unknown;
    try {
      responses = (JSON.parse(payload.toString()) as { responses?: unknown }).responses;
    } catch {
      return true;
    }
    if (!Array.isArray(responses)) return true;
    for (const r of responses as DynsecResponse[]) {
      const waiting = typeof r?.correlationData === 'string' ? this.pending.get(r.correlationData) : undefined;
      if (!waiting) continue; // another admin's response
      this.pending.delete(r.correlationData!);
      clearTimeout(waiting.timer);
      waiting.resolve(r);
    }
    return true;
  }

  /** Sends the commands (in order) and resolves with one response per command, failed ones included. */
  async send(commands: DynsecCommand[]): Promise<DynsecResponse[]> {
    const out: DynsecResponse[] = [];
    for (let i = 0; i < commands.length; i += BATCH) {
      const batch = commands.slice(i, i + BATCH).map((c) => ({ ...c, correlationData: this.prefix + ++this.counter }));
      const answers = batch.map(
        (c) =>
          new Promise<DynsecResponse>((resolve, reject) => {
            const timer = setTimeout(() => {
              this.pending.delete(c.correlationData);
              reject(new Error(`no Dynamic Security response to ${c.command} within ${this.timeoutMs} ms`));
            }, this.timeoutMs);
            this.pending.set(c.correlationData, { resolve, reject, timer });
          }),
      );
      // Settle every answer even when the publish fails, so no timer outlives this call.
      const settled = Promise.allSettled(answers);
      try {
        await this.client.publishAsync(DYNSEC_COMMAND_TOPIC, JSON.stringify({ commands: batch }), { qos: 1 });
      } catch (err) {
        this.failAll(err as Error);
      }
      for (const s of await settled) {
        if (s.status === 'rejected') throw s.reason;
        out.push(s.value);
      }
    }
    return out;
  }

  /** Like send(), but throws the first failure. */
  async run(commands: DynsecCommand[]): Promise<DynsecResponse[]> {
    const responses = await this.send(commands);
    responses.forEach((r, i) => {
      if (r.error) throw new DynsecError(commands[i]!, r.error);
    });
    return responses;
  }

  /** Rejects every outstanding command (the connection is gone). */
  failAll(err: Error): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(err);
      this.pending.delete(id);
    }
  }
}
