/**
 * Credentials on the device (issue 17): the receiver listens on the device's own credentials topic, decrypts each
 * JWE with the key of the connection it came in on, and writes the value atomically as `DIR/NAME`, mode 0400,
 * owned by the credential's Linux user (when running as root). A withdrawal deletes the file; a manifest deletes
 * anything the gateway no longer lists. A JWE that does not decrypt (tampered, for another key) is refused and the
 * copy held is kept. Values are never logged; names are checked again here (a name never becomes a path).
 * The same messages can also be fetched over HTTPS with the device certificate (mutual TLS) — at start, and on a
 * timer while MQTT is down — and are handled the same way.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { z } from 'zod';
import { openSecret } from '../credentials/index.js';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { CREDENTIAL_FETCH_PATH, credentialFetchReplySchema, credentialMessageSchema, isCredentialName, LINUX_USER_PATTERN, parseMessage, topics, type CredentialMessage } from '../protocol/index.js';
import { ServerList } from './failover.js';
import type { Logger } from './renewal.js';
import type { Identity } from './store.js';

/** tmpfs on systemd hosts: nothing decrypted survives a reboot. */
export const DEFAULT_CREDENTIALS_DIR = '/run/wott/credentials';
/** Names cannot start with ".", so this never collides with a credential. */
const INDEX = '.index.json';

const indexSchema = z.record(z.string(), z.object({ version: z.number().int(), linuxUser: z.string().nullable() }));

export interface HeldCredential {
  name: string;
  version: number;
  linuxUser: string | null;
}

/** uid and gid of a Linux user, or undefined when there is none (getent: local files, LDAP, …). */
export function lookupLinuxUser(user: string): { uid: number; gid: number } | undefined {
  if (!LINUX_USER_PATTERN.test(user)) return undefined;
  let line: string;
  try {
    line = execFileSync('getent', ['passwd', user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return undefined;
  }
  const [, , uid, gid] = line.trim().split(':');
  return uid !== undefined && gid !== undefined ? { uid: Number(uid), gid: Number(gid) } : undefined;
}

export class CredentialFiles {
  constructor(
    readonly dir: string,
    private readonly lookup: (user: string) => { uid: number; gid: number } | undefined = lookupLinuxUser,
  ) {}

  private index(): Record<string, { version: number; linuxUser: string | null }> {
    const path = join(this.dir, INDEX);
    if (!existsSync(path)) return {};
    try {
      return indexSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
    } catch {
      return {};
    }
  }

  private saveIndex(index: Record<string, { version: number; linuxUser: string | null }>): void {
    writeFileAtomic(join(this.dir, INDEX), JSON.stringify(index) + '\n', 0o600);
  }

  list(): HeldCredential[] {
    return Object.entries(this.index())
      .filter(([name]) => isCredentialName(name) && existsSync(join(this.dir, name)))
      .map(([name, v]) => ({ name, ...v }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Writes DIR/NAME atomically, 0400; chowned to `linuxUser` when running as root. Throws (writing nothing) on a bad name or an unknown user. */
  write(name: string, version: number, value: Buffer, linuxUser: string | null): void {
    if (!isCredentialName(name)) throw new Error(`refused credential name ${JSON.stringify(String(name).slice(0, 70))}: not a plain file name`);
    const owner = linuxUser === null ? undefined : this.lookup(linuxUser);
    if (linuxUser !== null && !owner) throw new Error(`credential "${name}": unknown Linux user "${linuxUser.slice(0, 40)}" on this device; not written`);
    // 0711: users can open their own credential by name but cannot list the others.
    mkdirSync(this.dir, { recursive: true, mode: 0o711 });
    const tmp = join(this.dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
    const fd = openSync(tmp, 'wx', 0o400);
    try {
      writeSync(fd, value);
      fsyncSync(fd);
    } catch (err) {
      closeSync(fd);
      rmSync(tmp, { force: true });
      throw err;
    }
    closeSync(fd);
    try {
      if (owner && process.getuid?.() === 0) chownSync(tmp, owner.uid, owner.gid);
      renameSync(tmp, join(this.dir, name));
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
    this.saveIndex({ ...this.index(), [name]: { version, linuxUser } });
  }

  /** Deletes DIR/NAME; false when it was not there. */
  remove(name: string): boolean {
    if (!isCredentialName(name)) return false;
    const path = join(this.dir, name);
    const had = existsSync(path);
    rmSync(path, { force: true });
    const index = this.index();
    if (name in index) {
      delete index[name];
      this.saveIndex(index);
    }
    return had;
  }
}

export interface ReceiverOptions {
  urls: string[];
  caPem: string;
  device: string;
  identity: Identity;
  files: CredentialFiles;
  log: Logger;
  /** The gateways' HTTPS URLs: fetch over mutual TLS at start and, every `fetchIntervalMs`, while MQTT is down. */
  servers?: string[];
  /** Default 60 s. */
  fetchIntervalMs?: number;
}

/** A fetch reply holds JWEs of at most 64 KiB values each; this bounds a hostile or broken answer. */
const MAX_FETCH_BYTES = 32 * 1024 * 1024;

/** GET the device's credentials from one gateway over mutual TLS with `identity`. */
function fetchFrom(server: string, identity: Identity, caPem: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(CREDENTIAL_FETCH_PATH, server), { method: 'GET', ca: caPem, key: identity.keyPem, cert: identity.certPem, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_FETCH_BYTES) return req.destroy(new Error('credential reply too large'));
        chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error('credential fetch timed out')));
    req.on('error', reject);
    req.end();
  });
}

export class CredentialReceiver {
  private client: mqtt.MqttClient;
  private work: Promise<void> = Promise.resolve();
  /** Messages handled (tests wait on it). */
  handled = 0;

  private identity: Identity;
  private readonly servers?: ServerList;
  private fetchTimer?: NodeJS.Timeout;
  private fetching?: Promise<boolean>;
  /** Fetches over HTTPS that were applied (tests, diagnostics). */
  fetched = 0;

  constructor(private readonly options: ReceiverOptions) {
    this.identity = options.identity;
    this.client = this.connect(options.identity);
    if (options.servers?.length) {
      this.servers = new ServerList(options.servers);
      void this.fetch();
      this.fetchTimer = setInterval(() => {
        if (!this.client.connected) void this.fetch();
      }, options.fetchIntervalMs ?? 60_000);
      this.fetchTimer.unref();
    }
  }

  /**
   * Fetches over HTTPS with the current certificate and applies the reply as if it had come over MQTT (deliveries,
   * withdrawals, then the manifest). True when applied; a failure is logged and changes nothing held.
   */
  fetch(): Promise<boolean> {
    if (!this.servers) return Promise.resolve(false);
    // One at a time: a timer tick during a slow fetch joins it.
    return (this.fetching ??= this.fetchOnce().finally(() => (this.fetching = undefined)));
  }

  private async fetchOnce(): Promise<boolean> {
    const identity = this.identity;
    const { log, device } = this.options;
    try {
      const reply = await this.servers!.call(async (server) => {
        const r = await fetchFrom(server, identity, this.options.caPem);
        if ([502, 503, 504].includes(r.status)) throw Object.assign(new Error(`${server}: ${r.status}`), { code: 'ECONNRESET' });
        return r;
      });
      if (reply.status !== 200) {
        log.warn({ status: reply.status, reason: reply.body.slice(0, 200).trim() }, 'credentials: the gateway refused the HTTPS fetch');
        return false;
      }
      const parsed = parseMessage(credentialFetchReplySchema, reply.body);
      if (parsed.device !== device) throw new Error(`the reply is for ${parsed.device}`);
      // In the same queue as MQTT messages, in order, with the key of the certificate the JWEs were made for.
      await (this.work = this.work.then(async () => {
        for (const message of parsed.messages) await this.handle(JSON.stringify(message), identity.keyPem);
      }));
      this.fetched++;
      return true;
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'credentials: HTTPS fetch failed');
      return false;
    }
  }

  private connect(identity: Identity): mqtt.MqttClient {
    const [first, ...more] = this.options.urls.map((u) => new URL(u));
    const client = mqtt.connect(first!.href, {
      ...(more.length
        ? { servers: [first!, ...more].map((u) => ({ host: u.hostname, port: Number(u.port || 8883), protocol: u.protocol.replace(':', '') as 'mqtts' })) }
        : {}),
      key: identity.keyPem,
      cert: identity.certPem,
      ca: this.options.caPem,
      // Its own session beside the telemetry publisher's (a client id may be the identity plus ":suffix").
      clientId: `${this.options.device}:credentials`,
      protocolVersion: 4,
      reconnectPeriod: 5000,
      connectTimeout: 15_000,
    });
    client.on('connect', () => {
      client.subscribe(topics.credentials(this.options.device), { qos: 1 }, (err) => {
        if (err) this.options.log.warn({ err: err.message }, 'credentials: subscription refused');
      });
    });
    client.on('message', (_topic, payload) => {
      this.work = this.work.then(() => this.handle(payload, identity.keyPem)).finally(() => void this.handled++);
    });
    client.on('error', (err) => this.options.log.warn({ err: err.message }, 'credentials: MQTT error'));
    return client;
  }

  /** After a renewal: a new session with the new certificate (the gateway re-encrypts to its key). */
  setIdentity(identity: Identity): void {
    this.identity = identity;
    const old = this.client;
    this.client = this.connect(identity);
    this.client.once('connect', () => void old.endAsync(true));
  }

  /** Handles one message from the credentials topic with the private key of the session it arrived on. Never throws. */
  async handle(payload: Buffer | string, keyPem: string): Promise<void> {
    let message: CredentialMessage;
    try {
      message = parseMessage(credentialMessageSchema, payload);
    } catch (err) {
      this.options.log.warn({ err: (err as Error).message }, 'credentials: ignored a malformed message');
      return;
    }
    const { files, log } = this.options;
    try {
      switch (message.type) {
        case 'deliver': {
          let secret: { value: Buffer; linuxUser: string | null };
          try {
            secret = await openSecret(message.jwe, keyPem, { device: this.options.device, name: message.name, version: message.version });
          } catch (err) {
            log.warn({ credential: message.name, err: (err as Error).message }, 'credentials: refused a JWE that does not decrypt with this device key; the copy held is kept');
            return;
          }
          // The owner comes from inside the JWE (authenticated with the value), never from the message around it.
          try {
            files.write(message.name, message.version, secret.value, secret.linuxUser);
          } finally {
            secret.value.fill(0);
          }
          log.info({ credential: message.name, version: message.version }, 'credential written');
          return;
        }
        case 'withdraw':
          if (files.remove(message.name)) log.info({ credential: message.name }, 'credential withdrawn: deleted');
          return;
        case 'manifest': {
          const keep = new Set(message.held.map((h) => h.name));
          for (const held of files.list()) if (!keep.has(held.name) && files.remove(held.name)) log.info({ credential: held.name }, 'credential no longer held: deleted');
          return;
        }
      }
    } catch (err) {
      log.error({ credential: 'name' in message ? message.name : null, err: (err as Error).message }, 'credentials: could not apply a message');
    }
  }

  async close(): Promise<void> {
    clearInterval(this.fetchTimer);
    await this.fetching;
    await this.work;
    await this.client.endAsync(true);
  }
}
