/**
 * Device-to-device links over mutual TLS with the devices' own certificates (issue 18), and the reports they make
 * on their own:
 *
 *  - a peer whose certificate is ours but revoked (the gateway's CRL) or expired: a peer report against that
 *    device id — the handshake proved it holds the key, so the name is its own;
 *  - a peer whose certificate does not chain to our CA: its name proves nothing, so nobody is reported under it;
 *    its remote address goes into the next telemetry as an intrusion source with service `tls`;
 *  - a verified peer that sends data failing the caller's zod schema: a peer report against it, and the link closes.
 *
 * Messages are JSON, one per line, each at most `maxMessageBytes`.
 *
 * Certificates are checked here against the CA chain the agent holds rather than by OpenSSL's verify: device
 * certificates carry only the clientAuth purpose, which OpenSSL refuses on the connecting side of a TLS link, and
 * the outcome must tell "ours but revoked/expired" from "not ours" — which a single verify error does not. The
 * chain is fixed (device ← our intermediate ← our root, anchors from enrollment), so the check is short:
 * issuer name and signature, dates, purpose, identity; then the CRL, itself signature-checked.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect, createServer as tlsCreateServer, type Server, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { z } from 'zod';
import { CRL_PATH, identityFromNames, normalizeSerial, type PeerReport } from '../protocol/index.js';
import { normalizeAddress } from './collectors/intrusions.js';
import { mqttUrls } from './agent.js';
import { reportPeerFromStore, type PeerRateLimits } from './peer-report.js';
import { splitPem, type Logger } from './renewal.js';
import { estServers, AgentStore } from './store.js';

export interface PeerLinkOptions<T> {
  /** The agent directory holding this device's key, certificate and CA chain (default /var/lib/wott). */
  dir?: string;
  /** Validates every message a peer sends. */
  schema: z.ZodType<T>;
  /** Where revocations come from (default: the first gateway's /crl). */
  crlUrl?: string;
  /** A CRL older than this is fetched again at the next handshake (default 60 s; 0 = every handshake). */
  crlMaxAgeMs?: number;
  /** Broker URL(s) for the reports (default: as `wott agent run`). */
  mqtt?: string;
  /** Longest accepted message line (default 64 KiB). */
  maxMessageBytes?: number;
  limits?: PeerRateLimits;
  log?: Logger;
  /** Told of every peer refused and of what was done about it (reports, intrusion records). */
  onRejected?: (rejection: PeerRejection) => void;
}

export interface VerifiedPeer {
  device: string;
  address: string;
}

export type RejectionKind = 'revoked' | 'expired' | 'bad-data' | 'foreign' | 'no-certificate' | 'not-a-device' | 'self' | 'unexpected-peer' | 'revocation-unknown';

export interface PeerRejection {
  kind: RejectionKind;
  /** The device, when the certificate proved one (never for `foreign`). */
  device?: string;
  address: string;
  reason: string;
  /** The peer report sent about it, once the broker acknowledged it. */
  report?: Promise<PeerReport | undefined>;
}

export interface PeerConnection<T> {
  peer: VerifiedPeer;
  socket: TLSSocket;
  send(message: T): void;
  close(): void;
}

/** Ratings sent with the automatic reports (1 = behaves as expected … 0 = hostile). */
const RATING = { revoked: 0, expired: 0.3, 'bad-data': 0.2 } as const;

type Verdict = { ok: true; peer: VerifiedPeer } | { ok: false; kind: RejectionKind; device?: string; reason: string };

interface Revocations {
  serials: Set<string>;
  nextUpdate: number;
  fetchedAt: number;
}

export class PeerLink<T> {
  private readonly store: AgentStore;
  private readonly caCerts: X509Certificate[];
  private readonly caPem: string;
  private revocations?: Revocations;
  private crlFetch?: Promise<void>;
  private readonly servers = new Set<Server>();

  constructor(private readonly options: PeerLinkOptions<T>) {
    this.store = new AgentStore(options.dir ?? '/var/lib/wott');
    this.caPem = this.store.caPem();
    this.caCerts = splitPem(this.caPem).map((p) => new X509Certificate(p));
  }

  get device(): string {
    return this.store.state().device;
  }

  private crlUrl(): string {
    return this.options.crlUrl ?? new URL(CRL_PATH, estServers(this.store.state())[0]!).href;
  }

  /** Fetches and checks the CRL (signed by our issuing CA, not past its nextUpdate). */
  async refreshRevocations(): Promise<void> {
    this.crlFetch ??= (async () => {
      try {
        const der = await fetchBytes(this.crlUrl(), this.caPem);
        const crl = new x509.X509Crl(new Uint8Array(der));
        let signed = false;
        for (const ca of this.caCerts) {
          if (crl.issuer !== new x509.X509Certificate(ca.raw).subject) continue;
          if (await crl.verify({ publicKey: await new x509.X509Certificate(ca.raw).publicKey.export() })) signed = true;
        }
        if (!signed) throw new Error('the CRL is not signed by our CA');
        const nextUpdate = crl.nextUpdate?.getTime() ?? 0;
        if (nextUpdate <= Date.now()) throw new Error('the CRL is past its nextUpdate');
        this.revocations = { serials: new Set(crl.entries.map((e) => normalizeSerial(e.serialNumber))), nextUpdate, fetchedAt: Date.now() };
      } catch (err) {
        this.options.log?.warn({ err: (err as Error).message, url: this.crlUrl() }, 'peer link: could not refresh the CRL');
      }
    })().finally(() => (this.crlFetch = undefined));
    return this.crlFetch;
  }

  private async currentRevocations(): Promise<Revocations | undefined> {
    const r = this.revocations;
    if (!r || Date.now() - r.fetchedAt >= (this.options.crlMaxAgeMs ?? 60_000) || r.nextUpdate <= Date.now()) await this.refreshRevocations();
    const now = this.revocations;
    return now && now.nextUpdate > Date.now() ? now : undefined; // fail closed without a current CRL
  }

  /** The certificate's verdict, from the chain we hold, the dates and the CRL. */
  private async verify(socket: TLSSocket): Promise<Verdict> {
    const address = normalizeAddress(socket.remoteAddress ?? '') ?? 'unknown';
    const raw = socket.getPeerX509Certificate?.();
    if (!raw) return { ok: false, kind: 'no-certificate', reason: 'no certificate presented' };
    const issuer = this.caCerts.find((ca) => raw.checkIssued(ca) && raw.verify(ca.publicKey));
    if (!issuer || raw.ca) return { ok: false, kind: 'foreign', reason: 'certificate not issued by our CA: its name proves nothing' };
    const names = raw.subjectAltName ?? '';
    const uris = names.split(/,\s*/).filter((e) => e.startsWith('URI:')).map((e) => e.slice(4));
    const cn = /(?:^|\n)CN=([^\n]*)/.exec(raw.subject)?.[1] ?? '';
    const who = identityFromNames(cn, uris);
    if ('error' in who || who.kind !== 'device') return { ok: false, kind: 'not-a-device', reason: 'not a device certificate' };
    const device = who.id;
    if (device === this.device) return { ok: false, kind: 'self', device, reason: 'the peer presents this device’s own identity' };
    const now = Date.now();
    if (Date.parse(raw.validTo) <= now || Date.parse(raw.validFrom) > now) {
      return { ok: false, kind: 'expired', device, reason: `presented a certificate outside its validity (${raw.validFrom} – ${raw.validTo}) on a device-to-device link` };
    }
    const revocations = await this.currentRevocations();
    if (!revocations) return { ok: false, kind: 'revocation-unknown', device, reason: 'no current CRL: revocation cannot be checked' };
    if (revocations.serials.has(normalizeSerial(raw.serialNumber))) {
      return { ok: false, kind: 'revoked', device, reason: 'presented a revoked certificate on a device-to-device link' };
    }
    return { ok: true, peer: { device, address } };
  }

  /** Acts on a refusal: a report for an identity the handshake proved, an intrusion record for a foreign one. */
  private refused(socket: TLSSocket, verdict: Extract<Verdict, { ok: false }>): PeerRejection {
    const address = normalizeAddress(socket.remoteAddress ?? '') ?? 'unknown';
    const rejection: PeerRejection = { kind: verdict.kind, address, reason: verdict.reason, ...(verdict.device ? { device: verdict.device } : {}) };
    if (verdict.kind === 'foreign' && address !== 'unknown') {
      try {
        this.store.recordTlsPeer(address);
      } catch (err) {
        this.options.log?.warn({ err: (err as Error).message }, 'peer link: could not record an intrusion source');
      }
    }
    if ((verdict.kind === 'revoked' || verdict.kind === 'expired' || verdict.kind === 'bad-data') && verdict.device) {
      rejection.report = this.report(verdict.device, RATING[verdict.kind], verdict.reason);
    }
    this.options.log?.warn({ peer: verdict.device ?? null, address, kind: verdict.kind }, `peer link: refused a peer: ${verdict.reason}`);
    this.options.onRejected?.(rejection);
    socket.destroy();
    return rejection;
  }

  private report(subject: string, rating: number, reason: string): Promise<PeerReport | undefined> {
    return reportPeerFromStore(this.store, { subject, rating, reason }, { urls: mqttUrls(this.store.state(), this.options.mqtt), ...(this.options.limits ? { limits: this.options.limits } : {}) }).catch((err: Error) => {
      this.options.log?.warn({ subject, err: err.message }, 'peer link: the peer report was not sent');
      return undefined;
    });
  }

  /** Reads lines from a verified peer: each must parse as JSON and pass the schema, else it is reported. */
  private attach(socket: TLSSocket, peer: VerifiedPeer, onMessage: (message: T, peer: VerifiedPeer) => void): void {
    const max = this.options.maxMessageBytes ?? 64 * 1024;
    let buffered = '';
    let failed = false;
    const fail = (reason: string) => {
      if (failed) return;
      failed = true;
      this.refused(socket, { ok: false, kind: 'bad-data', device: peer.device, reason: `sent data that fails its schema on a device-to-device link: ${reason}`.slice(0, 300) });
    };
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      if (failed) return;
      buffered += chunk;
      for (let nl = buffered.indexOf('\n'); nl >= 0 && !failed; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (Buffer.byteLength(line) > max) return fail(`a message over ${max} bytes`);
        if (line.trim() === '') continue;
        let json: unknown;
        try {
          json = JSON.parse(line);
        } catch {
          return fail('not JSON');
        }
        const parsed = this.options.schema.safeParse(json);
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          return fail(`${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
        }
        onMessage(parsed.data, peer);
      }
      if (Buffer.byteLength(buffered) > max) fail(`a message over ${max} bytes`);
    });
    socket.on('error', () => undefined);
  }

  private tlsOptions() {
    const identity = this.store.identity();
    // Our own checks decide (see the top of this file); TLS still proves the peer holds its certificate's key.
    return { key: identity.keyPem, cert: identity.certPem, ca: this.caPem, rejectUnauthorized: false, minVersion: 'TLSv1.3' as const };
  }

  /** A server that accepts verified peers; `onMessage` gets each valid message. */
  async listen(
    onMessage: (message: T, peer: VerifiedPeer, connection: PeerConnection<T>) => void,
    { port = 0, host = '127.0.0.1' }: { port?: number; host?: string } = {},
  ): Promise<{ server: Server; port: number; close(): Promise<void> }> {
    await this.currentRevocations();
    const server = tlsCreateServer({ ...this.tlsOptions(), requestCert: true }, (socket) => {
      socket.on('error', () => undefined);
      void this.verify(socket).then((verdict) => {
        if (!verdict.ok) return void this.refused(socket, verdict);
        const connection = this.connection(socket, verdict.peer);
        this.attach(socket, verdict.peer, (m, p) => onMessage(m, p, connection));
      });
    });
    server.on('tlsClientError', () => undefined);
    this.servers.add(server);
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, () => resolve()));
    return {
      server,
      port: (server.address() as AddressInfo).port,
      close: () => new Promise<void>((resolve) => {
        this.servers.delete(server);
        server.close(() => resolve());
      }),
    };
  }

  /**
   * Connects to a peer's link server and verifies it the same way. Rejects (after the automatic report or
   * intrusion record) when it does not verify, or when it is another device than `expect`.
   */
  async connect(
    target: { host: string; port: number; expect?: string; localAddress?: string },
    onMessage: (message: T, peer: VerifiedPeer) => void = () => undefined,
  ): Promise<PeerConnection<T>> {
    await this.currentRevocations();
    const socket = tlsConnect({ ...this.tlsOptions(), host: target.host, port: target.port, ...(target.localAddress ? { localAddress: target.localAddress } : {}), checkServerIdentity: () => undefined });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', () => resolve());
      socket.once('error', reject);
    });
    const verdict = await this.verify(socket);
    if (!verdict.ok) {
      const rejection = this.refused(socket, verdict);
      await rejection.report;
      throw new Error(`peer link to ${target.host}:${target.port} refused: ${verdict.reason}`);
    }
    if (target.expect !== undefined && verdict.peer.device !== target.expect) {
      this.options.onRejected?.({ kind: 'unexpected-peer', device: verdict.peer.device, address: verdict.peer.address, reason: `expected ${target.expect}` });
      socket.destroy();
      throw new Error(`peer link to ${target.host}:${target.port} refused: it is ${verdict.peer.device}, not ${target.expect}`);
    }
    this.attach(socket, verdict.peer, onMessage);
    return this.connection(socket, verdict.peer);
  }

  private connection(socket: TLSSocket, peer: VerifiedPeer): PeerConnection<T> {
    return {
      peer,
      socket,
      send: (message: T) => {
        // Our own messages pass the same schema: a bug here must not get this device reported by its peers.
        const parsed = this.options.schema.parse(message);
        socket.write(JSON.stringify(parsed) + '\n');
      },
      close: () => socket.end(),
    };
  }

  close(): void {
    for (const s of this.servers) s.close();
    this.servers.clear();
  }
}

/** GET over HTTPS verified with our CA chain; bounded. */
function fetchBytes(url: string, caPem: string, max = 16 * 1024 * 1024): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca: caPem, timeout: 10_000 }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return reject(new Error(`GET ${url}: HTTP ${res.statusCode}`));
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > max) req.destroy(new Error(`GET ${url}: over ${max} bytes`));
        else chunks.push(c);
      });
      res.on('end', () => resolve(Buffer.concat(chunks)));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}
