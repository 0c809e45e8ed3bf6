/**
 * `wott gateway`: one process on embedded defaults: the CA with EST and the CRL on HTTPS, and the MQTT broker
 * (Aedes + the wott plugin) on MQTT over TLS. Scoring joins it in its own issue.
 */
import { createServer, type Server } from 'node:https';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { Aedes } from 'aedes';
import type { Registry } from 'prom-client';
import { InventoryTrustSource, policyThresholds, WottPlugin, type PolicyRule } from '../broker/index.js';
import { createMetrics, registerScoringMetrics } from './metrics.js';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { CertificateAuthority, createEstHandler, writeFileAtomic, PRIVATE_KEY_MODE } from '../ca/index.js';
import { readSyncCredentials, startMosquittoSync, type MosquittoSection, type MosquittoSync } from '../mosquitto-compat/index.js';
import { aedesBus, startScoring, type ScoreModel, type InfluxOptions, type ScoringService } from '../scoring/index.js';

export interface GatewayOptions {
  dataDir: string;
  httpsPort: number;
  /** Host names / addresses for the server certificate besides localhost, 127.0.0.1 and ::1. */
  hosts: string[];
  publicUrl?: string;
  certLifetimeMs: number;
  crlValidityMs: number;
  claim: boolean;
  passphrase?: string;
  log: Logger;
  mqttPort: number;
  policies: PolicyRule[];
  initialScore: number;
  onDowngrade: 'filter' | 'disconnect';
  eventIntervalMs: number;
  /** How often the broker looks for CA changes (revocations, quarantines); default 200 ms. */
  trustPollMs?: number;
  /** In-process scoring (the default); omitted when scoring runs elsewhere. */
  scoring?: GatewayScoringOptions;
  /** Keep a Mosquitto's Dynamic Security in line with the policies and scores (the `mosquitto:` config section). */
  mosquitto?: MosquittoSection;
}

export interface GatewayScoringOptions {
  model: ScoreModel;
  republishMs: number;
  historyRetentionMs: number;
  influx?: Omit<InfluxOptions, 'spoolDir' | 'log'>;
  tickMs?: number;
}

export interface Gateway {
  ca: CertificateAuthority;
  broker: Aedes;
  plugin: WottPlugin;
  metrics: Registry;
  httpsPort: number;
  mqttPort: number;
  scoring?: ScoringService;
  close(): Promise<void>;
}

/** Reuses the stored server certificate while it covers the hosts and has over a third of its life left. */
function serverCredentials(ca: CertificateAuthority, dataDir: string, hosts: string[], log: Logger): { key: string; cert: string } {
  const keyPath = join(dataDir, 'server', 'server.key');
  const certPath = join(dataDir, 'server', 'server.crt');
  if (existsSync(keyPath) && existsSync(certPath)) {
    try {
      const cert = new X509Certificate(readFileSync(certPath));
      const from = Date.parse(cert.validFrom);
      const to = Date.parse(cert.validTo);
      const san = cert.subjectAltName ?? '';
      const covers = hosts.every((h) => san.includes(`:${h}`));
      const signedByUs = cert.checkIssued(ca.material.intermediate) && cert.verify(ca.material.intermediate.publicKey);
      if (covers && signedByUs && to - Date.now() > (to - from) / 3) {
        return { key: readFileSync(keyPath, 'utf8'), cert: readFileSync(certPath, 'utf8') };
      }
    } catch {
      // unreadable: issue a fresh one below
    }
  }
  const issued = ca.issueServer(hosts);
  writeFileAtomic(keyPath, issued.keyPem, PRIVATE_KEY_MODE);
  const chain = issued.pem + ca.material.intermediate.toString();
  writeFileAtomic(certPath, chain);
  log.info({ serial: issued.serial, notAfter: issued.notAfter.toISOString() }, 'issued server certificate');
  return { key: issued.keyPem, cert: chain };
}

function listen(server: Server | TlsServer, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '0.0.0.0', () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** The sync runs beside the broker: same policies, same CA (so it can refresh Mosquitto's CRL and certificate). */
async function startGatewayMosquittoSync(options: GatewayOptions, section: MosquittoSection, ca: CertificateAuthority): Promise<MosquittoSync> {
  const credentials = readSyncCredentials(resolve(section.credentials));
  const sync = await startMosquittoSync({
    url: section.url,
    key: credentials.key,
    cert: credentials.cert,
    ca: credentials.ca,
    dataDir: options.dataDir,
    authority: ca,
    policies: options.policies,
    initialScore: options.initialScore,
    onDowngrade: options.onDowngrade,
    ...(section.dir ? { mosquittoDir: resolve(section.dir) } : {}),
    ...(section.reloadCommand ? { reloadCommand: section.reloadCommand } : {}),
    log: options.log,
  });
  options.log.info({ mosquitto: section.url, identity: credentials.identity }, 'Mosquitto sync started');
  return sync;
}

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const { log } = options;
  const ca = await CertificateAuthority.open({
    dataDir: options.dataDir,
    passphrase: options.passphrase,
    certLifetimeMs: options.certLifetimeMs,
    crlValidityMs: options.crlValidityMs,
  });
  const tls = serverCredentials(ca, options.dataDir, options.hosts, log);
  const metrics = createMetrics();
  const est = createEstHandler(ca, { claim: options.claim, log });
  const https = createServer(
    {
      ...tls,
      ca: ca.caCertificates().map((c) => c.toString()),
      // Renewal authenticates with the current certificate; other endpoints do not need one, and the EST handler
      // decides per request (it reads socket.authorized), so the handshake itself must not insist.
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
    },
    (req, res) => {
      if (req.url === '/metrics' && req.method === 'GET') {
        metrics.metrics().then(
          (body) => res.writeHead(200, { 'Content-Type': metrics.contentType }).end(body),
          () => res.writeHead(500).end(),
        );
        return;
      }
      est(req, res);
    },
  );
  https.on('tlsClientError', (err) => log.debug({ err: err.message }, 'TLS handshake failed'));
  const httpsPort = await listen(https, options.httpsPort);

  // MQTT over TLS. The handshake accepts any certificate so that the plugin can record who failed (by CN) before
  // refusing; nothing reaches MQTT unless acceptTls() has verified chain, identity and revocation.
  const plugin = new WottPlugin({
    policies: options.policies,
    initialScore: options.initialScore,
    onDowngrade: options.onDowngrade,
    eventIntervalMs: options.eventIntervalMs,
    trust: new InventoryTrustSource(options.dataDir, options.trustPollMs ?? 200),
    log,
    metrics,
  });
  const broker = await Aedes.createBroker();
  await plugin.attach(broker);
  const mqtt = createTlsServer(
    { ...tls, ca: ca.caCertificates().map((c) => c.toString()), requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' },
    (socket: TLSSocket) => {
      if (plugin.acceptTls(socket)) broker.handle(socket);
    },
  );
  mqtt.on('tlsClientError', (err) => log.debug({ err: err.message }, 'MQTT TLS handshake failed'));
  // Every raw connection, so that shutdown can end the ones no MQTT client owns (mid-handshake, taken over).
  const sockets = new Set<import('node:net').Socket>();
  mqtt.on('connection', (socket: import('node:net').Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const mqttPort = await listen(mqtt, options.mqttPort);
  if (options.policies.length === 0) {
    log.warn('no policies configured: every topic outside wott/ is denied (see wott.example.yaml)');
  }
  const scoring = options.scoring
    ? await startScoring({
        ...options.scoring,
        dataDir: options.dataDir,
        bus: aedesBus(broker),
        thresholds: policyThresholds(options.policies),
        log,
      })
    : undefined;
  if (scoring) registerScoringMetrics(metrics, scoring);
  const mosquittoSync = options.mosquitto ? await startGatewayMosquittoSync(options, options.mosquitto, ca) : undefined;
  ca.setCrlUrl(`${options.publicUrl ?? `https://${options.hosts[0] ?? 'localhost'}:${httpsPort}`}/crl`);
  await ca.refreshCrl();

  // Keep the CRL fresh before its nextUpdate even when nothing is revoked.
  const crlTimer = setInterval(
    () => void ca.refreshCrl().catch((err: Error) => log.error({ err: err.message }, 'CRL refresh failed')),
    Math.min(options.crlValidityMs / 4, 3_600_000),
  );
  crlTimer.unref();
  log.info({ https: httpsPort, mqtt: mqttPort, dataDir: options.dataDir, claim: options.claim, policies: options.policies.length }, 'gateway listening');

  return {
    ca,
    broker,
    plugin,
    metrics,
    httpsPort,
    mqttPort,
    ...(scoring ? { scoring } : {}),
    async close() {
      clearInterval(crlTimer);
      await mosquittoSync?.close();
      await scoring?.close();
      await new Promise<void>((resolve) => {
        mqtt.close(() => resolve());
        for (const client of Object.values((broker as unknown as { clients: Record<string, { close(): void }> }).clients)) client.close();
        for (const socket of sockets) socket.destroy();
      });
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      plugin.close();
      await new Promise<void>((resolve) => {
        https.close(() => resolve());
        https.closeAllConnections();
      });
      ca.close();
      log.info('gateway stopped');
    },
  };
}
