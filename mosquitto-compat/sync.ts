/**
 * Keeps Mosquitto's Dynamic Security in line with wott: one client + one role per device whose ACLs grant exactly
 * what the device's live Trust Score allows (acl.ts), service identities with their roles, revoked identities
 * stripped and disabled, and the CRL file Mosquitto reads kept current.
 *
 * Inputs: retained scores from Mosquitto itself (wott/v1/scores/+, published by the scoring identity), and the CA
 * inventory (SQLite, read-only connection polled with PRAGMA data_version, following its change feed like
 * broker/trust.ts InventoryTrustSource, which we cannot reuse as is because it does not enumerate services).
 *
 * What the real Mosquitto 2.0.11 does, and what we therefore do:
 * - `modifyRole` with an `acls` array replaces a role's ACLs atomically and does NOT kick its holders (only
 *   addRoleACL/removeRoleACL, add/removeClientRole, disable/deleteClient kick). Mosquitto checks publishes and every
 *   delivery against the current ACLs, so a score drop takes effect on the live connection at once: publishes are
 *   dropped (QoS 0 silently, QoS 1 still PUBACKed on MQTT 3.1.1), deliveries stop, existing subscriptions stay.
 *   We edit only when the score crosses a threshold (or the state changes), with one modifyRole.
 *   With `onDowngrade: 'disconnect'` (as in the Aedes plugin) a drop also kicks the device.
 * - `disableClient` kicks the client but does NOT keep a certificate client out: with use_identity_as_username
 *   Mosquitto runs no password check, and the plugin only checks `disabled` there. So a revoked identity gets an
 *   empty role (nothing allowed) and is disabled (kicked), and the CRL keeps it out at the handshake.
 * - The CRL file is read at start and on SIGHUP only. On a new CRL we rewrite the file, send SIGHUP (pid file or a
 *   reload command), wait a moment, and then kick the holders of newly revoked certificates so they must reconnect
 *   through the new CRL (Mosquitto never re-checks a live TLS session).
 * - Quarantined and unclaimed devices are isolated as the Aedes plugin isolates them, whatever the rules say: they
 *   may publish their own telemetry and read their own score, nothing else (rules with threshold 0 included).
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { z } from 'zod';
import { isRestricted, ScoreFence, type PolicyRule } from '../policy/index.js';
import { certificateCommonName, readServiceCredentials, toPem, type CertificateAuthority } from '../ca/index.js';
import type { FleetChange, FleetView } from '../fleet/index.js';
import {
  isDeviceId,
  normalizeSerial,
  parseMessage,
  parseServiceCommonName,
  parseTopic,
  scoreMessageSchema,
  topicFilters,
  type DeviceState,
  type ServiceRole,
} from '../protocol/index.js';
import { aclKey, aclScore, DeviceAclCompiler, deviceRoleName, serviceRoleName, type DynsecAcl } from './acl.js';
import { mosquittoPaths, serverCertificateDue, serverCertificateHosts, serviceRoles, writeBrokerFile, writeServerFiles } from './config.js';
import { DynsecControl, type DynsecCommand, type DynsecResponse } from './control.js';

export interface SyncLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface MosquittoSyncOptions {
  /** Mosquitto's TLS listener, e.g. mqtts://broker.example:8883. */
  url: string;
  /** The sync's admin service credentials (PEM): `wott ca service --role admin --name NAME`. */
  key: string;
  cert: string;
  /** CA chain to verify Mosquitto's server certificate (ca.crt next to the admin credentials). */
  ca: string;
  /** The fleet's read model (the sync follows its changes; whoever opened it closes it). */
  view: FleetView;
  /** With the CA at hand the sync also regenerates stale CRLs and renews Mosquitto's server certificate. */
  authority?: CertificateAuthority;
  policies: PolicyRule[];
  /** Score of a device no score message has been seen for (scoring.initialScore). */
  initialScore: number;
  /** 'filter' (default): a score drop only changes the role; 'disconnect': also kicks the device. */
  onDowngrade?: 'filter' | 'disconnect';
  /** The folder `wott mosquitto config` wrote; its crl.pem, mosquitto.pid and server.crt are used. */
  mosquittoDir?: string;
  /** Overrides of the paths in mosquittoDir. */
  crlFile?: string;
  pidFile?: string;
  /** Makes Mosquitto re-read the CRL instead of SIGHUP to the pid file, e.g. ['systemctl', 'reload', 'mosquitto']. */
  reloadCommand?: string[];
  log: SyncLogger;
  /** Inventory poll interval; default 200 ms. */
  pollMs?: number;
  commandTimeoutMs?: number;
  /** Wait after a reload before kicking revoked identities; default 300 ms. */
  reloadSettleMs?: number;
  /** How often the CA is asked for a fresh CRL and the server certificate is checked (needs `authority`); default 60 s. */
  maintenanceMs?: number;
  /** Skips the host name check of Mosquitto's certificate (it is still checked against our CA). */
  checkServerIdentity?: () => undefined;
}

export interface SyncStats {
  reconciles: number;
  commands: number;
  roleEdits: number;
  kicks: number;
  errors: number;
  malformedScores: number;
  crlWrites: number;
  reloads: number;
}

export interface MosquittoSync {
  /** Resolves after the first full reconciliation with Mosquitto. */
  readonly ready: Promise<void>;
  readonly stats: Readonly<SyncStats>;
  /** Resolves when no work is pending (scores, inventory changes, CRL). */
  settled(): Promise<void>;
  /** Sends Dynamic Security commands over the sync's connection (diagnostics, tests). */
  command(commands: DynsecCommand[]): Promise<DynsecResponse[]>;
  /** New topic policies (a reload): every device's ACLs are computed again and applied. */
  setPolicies(rules: PolicyRule[]): void;
  close(): Promise<void>;
}

/** The optional `mosquitto:` section a wott.yaml can carry to run the sync inside `wott gateway`. */
export const mosquittoSectionSchema = z
  .object({
    url: z.string().regex(/^mqtts:\/\/[^/]+$/, 'expected mqtts://HOST:PORT'),
    /** Folder with admin.key, admin.crt and ca.crt (wott ca service --role admin --name NAME --out DIR). */
    credentials: z.string().min(1),
    /** The folder `wott mosquitto config --out` wrote (CRL file, pid file, server certificate). */
    dir: z.string().min(1).optional(),
    reloadCommand: z.array(z.string().min(1)).min(1).optional(),
  })
  .strict();
export type MosquittoSection = z.infer<typeof mosquittoSectionSchema>;

/** Reads admin.key, admin.crt and ca.crt and checks the certificate is an admin service certificate. */
export const readSyncCredentials = (dir: string) => readServiceCredentials(dir, 'admin');

// ------------------------------------------------------------------ the sync

interface AppliedClient {
  roles: string[];
  groups: string[];
  disabled: boolean;
}

interface Op {
  cmd: DynsecCommand;
  /** The device id or service CN the command is for: retried with the next change when it fails. */
  target?: string;
  ok?: () => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A short fingerprint of an ACL list: what we remember per role (a fleet's full ACL texts would not fit in memory). */
const aclDigest = (acls: readonly DynsecAcl[]) => createHash('sha256').update(aclKey(acls)).digest('base64');

class Sync implements MosquittoSync {
  readonly stats: SyncStats = { reconciles: 0, commands: 0, roleEdits: 0, kicks: 0, errors: 0, malformedScores: 0, crlWrites: 0, reloads: 0 };
  readonly ready: Promise<void>;
  private resolveReady!: () => void;
  private compiler: DeviceAclCompiler;
  private readonly inventory: FleetView;
  private stopFollowing?: () => void;
  private readonly client: MqttClient;
  private readonly control: DynsecControl;
  private readonly own: string;
  private readonly scores = new Map<string, number>();
  /** A deposed cluster scorer's late scores are ignored here as on the brokers (policy/score-fence.ts). */
  private readonly scoreFence = new ScoreFence();
  /** What we know Dynamic Security holds (filled by listClients/listRoles at every connect, then by our edits). */
  private clients = new Map<string, AppliedClient>();
  private roles = new Map<string, string>();
  /** Per device: the ACLs for its state and band (a score message that crosses no threshold computes nothing). */
  private readonly computed = new Map<string, { state: DeviceState; band: number; digest: string }>();
  /** Per device: the band of the role we last gave it (onDowngrade). */
  private readonly lastBand = new Map<string, number>();
  private readonly dirty = new Set<string>();
  private serviceRolesDirty = true;
  /** Revoked certificate serial → holder, kicked once Mosquitto has loaded a CRL listing it. */
  private readonly pendingKicks = new Map<string, string>();
  /** Kicks that could not be sent while disconnected. */
  private readonly deferredKicks = new Set<string>();
  private crlState?: { number: number; second: number };
  private reconciled = false;
  private closed = false;
  private flushTimer?: NodeJS.Timeout;
  private flushing?: Promise<void>;
  private again = false;
  private readonly timers: NodeJS.Timeout[] = [];
  private warnedNoReload = false;
  private readonly paths: { crl?: string; pid?: string };

  constructor(private readonly o: MosquittoSyncOptions) {
    this.compiler = new DeviceAclCompiler(o.policies);
    this.own = certificateCommonName(o.cert) ?? '';
    if (!this.own.startsWith('admin:')) throw new Error(`the sync needs an admin service certificate (CN admin:NAME), not CN ${this.own || 'missing'}`);
    const dirPaths = o.mosquittoDir ? mosquittoPaths(o.mosquittoDir) : undefined;
    this.paths = { crl: o.crlFile ?? dirPaths?.crlFile, pid: o.pidFile ?? dirPaths?.pidFile };
    if (!this.paths.crl) o.log.warn({}, 'no CRL file configured: revoked certificates are only stripped of their ACLs, Mosquitto still accepts them at the handshake');
    this.ready = new Promise((r) => (this.resolveReady = r));
    this.inventory = o.view;
    this.stopFollowing = o.view.onChange((change) => this.onFleetChange(change));
    this.client = mqtt.connect(o.url, {
      key: o.key,
      cert: o.cert,
      ca: o.ca,
      clientId: this.own, // Mosquitto replaces it with the CN anyway (use_username_as_clientid)
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      ...(o.checkServerIdentity ? { checkServerIdentity: o.checkServerIdentity } : {}),
    });
    this.control = new DynsecControl(this.client, o.commandTimeoutMs ?? 10_000);
    this.client.on('message', (topic, payload) => {
      if (!this.control.handle(topic, payload)) this.onScore(topic, payload);
    });
    this.client.on('connect', () => void this.reconcile());
    this.client.on('close', () => {
      this.reconciled = false;
      this.control.failAll(new Error('connection to Mosquitto closed'));
    });
    this.client.on('error', (err) => o.log.warn({ err: err.message, url: o.url }, 'Mosquitto connection error'));
    if (o.authority) this.timers.push(setInterval(() => void this.maintenance(), o.maintenanceMs ?? 60_000));
    for (const t of this.timers) t.unref();
  }

  // ---------------------------------------------------------------- inputs

  private onScore(topic: string, payload: Buffer): void {
    const parsed = parseTopic(topic);
    if (parsed?.kind !== 'scores') return;
    if (payload.length === 0) {
      // A cleared retained score: back to the initial score.
      this.scoreFence.forget(parsed.device);
      if (this.scores.delete(parsed.device)) this.markDirty(parsed.device);
      return;
    }
    try {
      const message = parseMessage(scoreMessageSchema, payload);
      if (message.device !== parsed.device) throw new Error(`message is about "${message.device}", topic about "${parsed.device}"`);
      if (!this.scoreFence.admit(parsed.device, message.epoch)) return;
      if (this.scores.get(parsed.device) === message.score) return;
      this.scores.set(parsed.device, message.score);
      this.markDirty(parsed.device);
    } catch (err) {
      this.stats.malformedScores++;
      this.o.log.warn({ topic, err: (err as Error).message }, 'ignored malformed score message');
    }
  }

  private onFleetChange(changes: FleetChange): void {
    if (this.closed) return;
    for (const id of changes.devices) this.markDirty(id);
    for (const cn of changes.services) this.markDirty(cn);
    for (const r of changes.revoked) if (r.kind !== 'server') this.pendingKicks.set(normalizeSerial(r.serial), r.deviceId ?? r.commonName);
    if (changes.crl || changes.revoked.length) this.schedule();
  }

  private async maintenance(): Promise<void> {
    const ca = this.o.authority!;
    try {
      await ca.currentCrl(); // regenerates before nextUpdate; the poll then picks the new CRL up
      if (this.o.mosquittoDir && serverCertificateDue(this.o.mosquittoDir)) {
        const issued = await writeServerFiles(ca, this.o.mosquittoDir, serverCertificateHosts(this.o.mosquittoDir));
        this.o.log.info({ serial: issued.serial, notAfter: issued.notAfter.toISOString() }, 'renewed the Mosquitto server certificate');
        await this.reloadMosquitto();
      }
    } catch (err) {
      this.o.log.error({ err: (err as Error).message }, 'CRL / server certificate maintenance failed');
    }
  }

  setPolicies(rules: PolicyRule[]): void {
    this.compiler = new DeviceAclCompiler(rules);
    this.computed.clear();
    for (const d of this.inventory.allDevices()) this.markDirty(d.id);
  }

  private markDirty(username: string): void {
    this.dirty.add(username);
    this.schedule();
  }

  private schedule(): void {
    if (this.flushTimer || this.closed) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      void this.flush();
    }, 5);
  }

  // ---------------------------------------------------------------- reconciliation

  /** After every (re)connect: learn what Dynamic Security holds, then make it what we want. */
  private async reconcile(): Promise<void> {
    try {
      await this.control.subscribe();
      // Retained scores arrive right after this SUBACK, before the answers to the commands we send next.
      await this.client.subscribeAsync(topicFilters.scores, { qos: 1 });
      const [clients, roles] = await this.control.send([
        { command: 'listClients', verbose: true },
        { command: 'listRoles', verbose: true },
      ]);
      if (clients?.error || roles?.error) throw new Error(`listing Dynamic Security failed: ${clients?.error ?? roles?.error}`);
      type ListedClient = { username: string; disabled?: boolean; roles?: Array<{ rolename: string }>; groups?: Array<{ groupname: string }> };
      type ListedRole = { rolename: string; acls?: DynsecAcl[] };
      this.clients = new Map(
        ((clients!.data as { clients?: ListedClient[] })?.clients ?? []).map((c) => [
          c.username,
          { roles: (c.roles ?? []).map((r) => r.rolename), groups: (c.groups ?? []).map((g) => g.groupname), disabled: c.disabled === true },
        ]),
      );
      this.roles = new Map(((roles!.data as { roles?: ListedRole[] })?.roles ?? []).map((r) => [r.rolename, aclDigest(r.acls ?? [])]));
      for (const d of this.inventory.allDevices()) this.dirty.add(d.id);
      for (const cn of this.inventory.services().keys()) this.dirty.add(cn);
      this.serviceRolesDirty = true;
      this.stats.reconciles++;
      this.reconciled = true;
      this.o.log.info({ clients: this.clients.size, roles: this.roles.size, devices: this.inventory.deviceCount }, 'connected to Mosquitto Dynamic Security');
      await this.flush();
      this.resolveReady();
    } catch (err) {
      this.stats.errors++;
      this.o.log.error({ err: (err as Error).message }, 'reconciling with Mosquitto failed; retrying on the next connection');
      if (!this.closed) setTimeout(() => this.client.connected && !this.reconciled && void this.reconcile(), 2000).unref();
    }
  }

  private flush(): Promise<void> {
    if (this.flushing) {
      this.again = true;
      return this.flushing;
    }
    this.flushing = (async () => {
      do {
        this.again = false;
        try {
          await this.flushOnce();
        } catch (err) {
          this.stats.errors++;
          this.o.log.error({ err: (err as Error).message }, 'Mosquitto sync step failed');
        }
      } while (this.again && !this.closed);
    })().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async flushOnce(): Promise<void> {
    if (this.closed) return;
    const kicks = await this.syncCrl();
    if (!this.reconciled) {
      for (const k of kicks) this.deferredKicks.add(k);
      return;
    }
    for (const k of this.deferredKicks) kicks.add(k);
    this.deferredKicks.clear();
    const ops: Op[] = [];
    if (this.serviceRolesDirty) {
      for (const role of serviceRoles()) this.roleOps(ops, role.rolename, () => role.acls, aclDigest(role.acls), undefined, role.textname);
      this.serviceRolesDirty = false;
    }
    const batch = [...this.dirty];
    this.dirty.clear();
    for (const username of batch) {
      if (isDeviceId(username)) this.deviceOps(ops, username, kicks);
      else this.serviceOps(ops, username);
    }
    for (const username of kicks) {
      const c = this.clients.get(username);
      // Unknown to Mosquitto, or disabled (which kicked it) and meant to stay so: nothing to do.
      if (!c || this.meantDisabled(username)) continue;
      // There is no "kick" command: disableClient kicks, and enabling right away restores the client (certificate
      // clients are never checked against `disabled` anyway).
      ops.push(
        { cmd: { command: 'disableClient', username }, target: username, ok: () => this.stats.kicks++ },
        { cmd: { command: 'enableClient', username }, target: username },
      );
    }
    await this.apply(ops, batch);
  }

  private meantDisabled(username: string): boolean {
    if (isDeviceId(username)) return this.inventory.deviceState(username) === 'revoked';
    return username !== this.own && this.inventory.services().get(username)?.active === false;
  }

  private async apply(ops: Op[], batch: string[]): Promise<void> {
    if (ops.length === 0) return;
    let responses: DynsecResponse[];
    try {
      responses = await this.control.send(ops.map((o) => o.cmd));
    } catch (err) {
      // Lost connection or timeout: what Mosquitto holds is unknown now; the next connect reconciles everything.
      for (const u of batch) this.dirty.add(u);
      throw err;
    }
    this.stats.commands += ops.length;
    responses.forEach((r, i) => {
      const op = ops[i]!;
      if (r.error) {
        this.stats.errors++;
        this.o.log.error({ command: op.cmd.command, target: op.target, error: r.error }, 'Dynamic Security refused a command');
        if (op.target) this.dirty.add(op.target); // retried with the next change (and at every reconnect)
        else this.serviceRolesDirty = true;
        return;
      }
      op.ok?.();
    });
  }

  /** Creates or replaces (modifyRole: atomic, no kick) the role when Mosquitto's ACLs differ from ours. */
  private roleOps(ops: Op[], rolename: string, build: () => DynsecAcl[], key: string, target?: string, textname?: string): void {
    const current = this.roles.get(rolename);
    if (current === key) return;
    const acls = build();
    const ok = () => {
      this.roles.set(rolename, key);
      this.stats.roleEdits++;
    };
    if (current === undefined) ops.push({ cmd: { command: 'createRole', rolename, ...(textname ? { textname } : {}), acls }, target, ok });
    else ops.push({ cmd: { command: 'modifyRole', rolename, acls }, target, ok });
  }

  private clientOps(ops: Op[], username: string, roles: string[], disabled: boolean, textname: string): void {
    const current = this.clients.get(username);
    const target = username;
    if (!current) {
      if (disabled && roles.length === 0) return; // nothing to hold back: no client means no permissions at all
      ops.push({
        cmd: { command: 'createClient', username, textname, roles: roles.map((rolename) => ({ rolename })) },
        target,
        ok: () => this.clients.set(username, { roles: [...roles], groups: [], disabled: false }),
      });
      if (disabled) ops.push({ cmd: { command: 'disableClient', username }, target, ok: () => this.clients.get(username) && (this.clients.get(username)!.disabled = true) });
      return;
    }
    // Exactly these roles and no groups: anything else would add ACLs we did not compute.
    for (const rolename of roles.filter((r) => !current.roles.includes(r))) {
      ops.push({ cmd: { command: 'addClientRole', username, rolename }, target, ok: () => current.roles.push(rolename) });
    }
    for (const rolename of current.roles.filter((r) => !roles.includes(r))) {
      ops.push({ cmd: { command: 'removeClientRole', username, rolename }, target, ok: () => (current.roles = current.roles.filter((r) => r !== rolename)) });
    }
    for (const groupname of current.groups) {
      ops.push({ cmd: { command: 'removeGroupClient', groupname, username }, target, ok: () => (current.groups = current.groups.filter((g) => g !== groupname)) });
    }
    if (current.disabled !== disabled) {
      ops.push({ cmd: { command: disabled ? 'disableClient' : 'enableClient', username }, target, ok: () => (current.disabled = disabled) });
    }
  }

  private deviceOps(ops: Op[], id: string, kicks: Set<string>): void {
    const state = this.inventory.deviceState(id);
    if (state === undefined) return; // not enrolled (yet): a score alone creates nothing
    const score = aclScore(state, this.scores.get(id), this.o.initialScore);
    const band = state === 'revoked' ? -1 : this.compiler.band(score);
    const build = () =>
      state === 'revoked' ? [] : isRestricted(state) ? this.compiler.restrictedAcls(id) : this.compiler.acls(id, score);
    let c = this.computed.get(id);
    if (!c || c.state !== state || c.band !== band) {
      // Only here, when a threshold was crossed or the state changed, are ACLs computed (and maybe edited).
      c = { state, band, digest: aclDigest(build()) };
      this.computed.set(id, c);
    }
    this.roleOps(ops, deviceRoleName(id), build, c.digest, id, `wott device ${id}`);
    this.clientOps(ops, id, [deviceRoleName(id)], state === 'revoked', `wott device ${id}`);
    const before = this.lastBand.get(id);
    if (this.o.onDowngrade === 'disconnect' && before !== undefined && state !== 'revoked' && band < before) kicks.add(id);
    this.lastBand.set(id, band);
  }

  private serviceOps(ops: Op[], cn: string): void {
    if (cn === this.own) return; // never lock ourselves out; our own revocation ends us at the handshake
    const s = this.inventory.services().get(cn);
    if (!s) return;
    const rolename = serviceRoleName(s.role);
    this.clientOps(ops, cn, s.active ? [rolename] : [], !s.active, `wott ${s.role} service ${s.name}`);
  }

  // ---------------------------------------------------------------- CRL

  /** Writes a new CRL to Mosquitto's crlfile and makes it reload; returns the identities to kick now. */
  private async syncCrl(): Promise<Set<string>> {
    const kicks = new Set<string>();
    const path = this.paths.crl;
    let latest = await this.inventory.latestCrl();
    if (!path || !latest) {
      // Nothing to reload into: kick at once, the empty role already holds a revoked device back.
      for (const username of this.pendingKicks.values()) kicks.add(username);
      this.pendingKicks.clear();
      return kicks;
    }
    if (this.crlState?.number !== latest.number) {
      const second = Math.floor(Date.parse(latest.thisUpdate) / 1000);
      if (this.crlState && second <= this.crlState.second && this.o.authority) {
        // OpenSSL keeps every CRL it has loaded and prefers the one with the later thisUpdate, which has one-second
        // resolution; make sure the new one is strictly later than the one Mosquitto already holds.
        await sleep(1000 - (Date.now() % 1000) + 5);
        await this.o.authority.refreshCrl(true);
        latest = (await this.inventory.latestCrl())!;
      }
      const pem = toPem(latest.der, 'X509 CRL');
      let current = '';
      try {
        current = readFileSync(path, 'utf8');
      } catch {
        // no file yet
      }
      if (current !== pem) {
        writeBrokerFile(dirname(path), path, pem);
        this.stats.crlWrites++;
        this.o.log.info({ crl: latest.number, file: path }, 'wrote the CRL for Mosquitto');
        if (await this.reloadMosquitto()) await sleep(this.o.reloadSettleMs ?? 300);
      }
      this.crlState = { number: latest.number, second: Math.floor(Date.parse(latest.thisUpdate) / 1000) };
    }
    if (this.pendingKicks.size) {
      let listed: Set<string>;
      try {
        listed = new Set(new x509.X509Crl(new Uint8Array(latest.der)).entries.map((e) => normalizeSerial(e.serialNumber)));
      } catch {
        listed = new Set();
      }
      for (const [serial, username] of this.pendingKicks) {
        if (listed.has(serial)) {
          kicks.add(username);
          this.pendingKicks.delete(serial);
        }
      }
    }
    return kicks;
  }

  /** SIGHUP makes Mosquitto re-read its CRL (and certificate, key and Dynamic Security file). */
  private async reloadMosquitto(): Promise<boolean> {
    const { reloadCommand } = this.o;
    try {
      if (reloadCommand) {
        await new Promise<void>((resolve, reject) =>
          execFile(reloadCommand[0]!, reloadCommand.slice(1), { timeout: 10_000 }, (err, _out, stderr) => (err ? reject(new Error(`${err.message} ${stderr}`.trim())) : resolve())),
        );
      } else if (this.paths.pid) {
        const pid = Number(readFileSync(this.paths.pid, 'utf8').trim());
        if (!Number.isInteger(pid) || pid <= 1) throw new Error(`no valid pid in ${this.paths.pid}`);
        process.kill(pid, 'SIGHUP');
      } else {
        if (!this.warnedNoReload) this.o.log.warn({}, 'Mosquitto reads the CRL only at start and on SIGHUP: give mosquittoDir, pidFile or reloadCommand');
        this.warnedNoReload = true;
        return false;
      }
      this.stats.reloads++;
      return true;
    } catch (err) {
      this.stats.errors++;
      this.o.log.error({ err: (err as Error).message }, 'could not make Mosquitto reload (the new CRL applies at its next start)');
      return false;
    }
  }

  // ---------------------------------------------------------------- API

  async settled(): Promise<void> {
    for (;;) {
      await this.ready;
      if (this.flushing) await this.flushing;
      else if (this.flushTimer || this.dirty.size || this.again) await sleep(10);
      else return;
    }
  }

  command(commands: DynsecCommand[]): Promise<DynsecResponse[]> {
    return this.control.send(commands);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.flushTimer);
    await this.flushing?.catch(() => undefined);
    this.control.failAll(new Error('sync closed'));
    await this.client.endAsync(true).catch(() => undefined);
    this.stopFollowing?.();
  }
}

/** Starts the sync; it connects (and reconnects) in the background; `ready` resolves after the first reconciliation. */
export async function startMosquittoSync(options: MosquittoSyncOptions): Promise<MosquittoSync> {
  return new Sync(options);
}
