/**
 * `npm run bench -- credentials`: credential deliveries prepared per second — the at-rest value opened
 * (AES-256-GCM) and encrypted to one device certificate (JWE, ECDH-ES + A256GCM with jose) — against the ceiling in
 * the same run: node:crypto's raw cost of one ephemeral P-256 key plus one ECDH, which every JWE must pay.
 * jose works through WebCrypto (several asynchronous operations per JWE), so the ratio is informative only; the goal
 * is the product's: one credential reaches a 10,000-device fleet within a minute (at least 167 deliveries/s).
 * Each figure is the median of three rounds.
 */
import { createECDH, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CredentialVault, encryptForCertificate } from '../credentials/index.js';
import { CertificateAuthority } from '../ca/index.js';
import { opsPerSecond, ratio, type Suite, type SuiteResult } from './harness.js';

async function median(fn: () => unknown, ms: number): Promise<number> {
  const rounds = [await opsPerSecond(fn, ms), await opsPerSecond(fn, ms), await opsPerSecond(fn, ms)].sort((a, b) => a - b);
  return rounds[1]!;
}

export const credentialsSuite: Suite = {
  name: 'credentials',
  description: 'credential deliveries prepared per second (vault + JWE to a device key) vs raw ephemeral P-256 ECDH',
  async run({ quick }) {
    const ms = quick ? 500 : 3000;
    const dir = mkdtempSync(join(tmpdir(), 'wott-bench-cred-'));
    const result: SuiteResult = { suite: 'credentials', measurements: [], ratios: [], goals: [] };
    try {
      const ca = await CertificateAuthority.open({ dataDir: dir });
      const issued = await ca.issueService('scoring', 'bench');
      await ca.close();
      // Any P-256 certificate will do for the encryption cost: the service certificate just issued.
      const cert = new X509Certificate(issued.pem);
      const peer = createECDH('prime256v1');
      peer.generateKeys();
      const peerPublic = peer.getPublicKey();
      result.measurements.push({
        name: 'ephemeral P-256 key + ECDH (ceiling)',
        unit: 'op/s',
        baseline: true,
        value: await median(() => {
          const e = createECDH('prime256v1');
          e.generateKeys();
          return e.computeSecret(peerPublic);
        }, ms),
      });
      const vault = CredentialVault.open(dir);
      const sealed = vault.seal('db-password', 1, Buffer.from('x'.repeat(256)));
      result.measurements.push({
        name: 'delivery: vault open + JWE',
        unit: 'op/s',
        value: await median(() => encryptForCertificate(cert.toString(), { device: 'dev-1', name: 'db-password', version: 1, linuxUser: null, value: vault.open('db-password', 1, sealed) }), ms),
      });
      ratio(result, 'delivery / ceiling', 'delivery: vault open + JWE', 'ephemeral P-256 key + ECDH (ceiling)');
      const rate = result.measurements.find((m) => m.name === 'delivery: vault open + JWE')!.value;
      result.goals.push({ name: 'a 10,000-device fleet within 60 s', met: rate >= 10_000 / 60, detail: `${(10_000 / rate).toFixed(1)} s of encryption for 10,000 devices` });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    return result;
  },
};
