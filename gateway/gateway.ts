/**
 * `wott gateway`: one process on embedded defaults. Today it wires the CA and its EST/CRL endpoints on HTTPS;
 * the MQTT broker and scoring join it in their own issues.
 */
import { createServer, type Server } from 'node:https';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { CertificateAuthority, createEstHandler, writeFileAtomic, PRIVATE_KEY_MODE } from '../ca/index.js';

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
}

export interface Gateway {
  ca: CertificateAuthority;
  httpsPort: number;
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

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '0.0.0.0', () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
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
    createEstHandler(ca, { claim: options.claim, log }),
  );
  https.on('tlsClientError', (err) => log.debug({ err: err.message }, 'TLS handshake failed'));
  const httpsPort = await listen(https, options.httpsPort);
  ca.setCrlUrl(`${options.publicUrl ?? `https://${options.hosts[0] ?? 'localhost'}:${httpsPort}`}/crl`);
  await ca.refreshCrl();

  // Keep the CRL fresh before its nextUpdate even when nothing is revoked.
  const crlTimer = setInterval(
    () => void ca.refreshCrl().catch((err: Error) => log.error({ err: err.message }, 'CRL refresh failed')),
    Math.min(options.crlValidityMs / 4, 3_600_000),
  );
  crlTimer.unref();
  log.info({ https: httpsPort, dataDir: options.dataDir, claim: options.claim }, 'gateway listening');

  return {
    ca,
    httpsPort,
    async close() {
      clearInterval(crlTimer);
      await new Promise<void>((resolve) => {
        https.close(() => resolve());
        https.closeAllConnections();
      });
      ca.close();
      log.info('gateway stopped');
    },
  };
}
