/** Plumbing for the peer tests: real agents enrolled with the CLI, fixture roots moved to the present. */
import { cpSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CLI, tempDir } from '../helpers.js';
import { run } from '../mqtt-helpers.js';
import type { CertificateAuthority } from '../../ca/index.js';

type T = Parameters<typeof tempDir>[0];

export const LATERAL_ROOT = resolve('test/fixtures/roots/lateral-target');
/** The moment the lateral-target fixture's logs were written "now" for (its last interval ends here). */
export const LATERAL_NOW = Date.parse('2024-11-24T10:30:00Z');

/**
 * A copy of a fixture root whose ISO-stamped log lines are moved by the same offset so that `at` (fixture time)
 * becomes `now`: the lines keep their order and spacing, and the agent's window (the last interval) sees them.
 */
export function rootAsOf(t: T, fixture: string, at: number, now = Date.now()): string {
  const root = join(tempDir(t), 'root');
  cpSync(fixture, root, { recursive: true });
  const offset = now - at;
  const logs = join(root, 'var/log');
  for (const name of readdirSync(logs)) {
    const path = join(logs, name);
    const moved = readFileSync(path, 'utf8').replace(/^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z|[+-]\d{2}:\d{2})/gm, (stamp) => new Date(Date.parse(stamp) + offset).toISOString());
    writeFileSync(path, moved);
  }
  return root;
}

/** `wott agent enroll` in its own process, with the bootstrap fingerprint. */
export async function enrollAgentCli(gw: { httpsPort: number; ca: CertificateAuthority }, dir: string, device: string): Promise<void> {
  const token = (await gw.ca.createToken(device)).token;
  const r = await run(process.execPath, [CLI, 'agent', 'enroll', '--server', `https://localhost:${gw.httpsPort}`, '--device', device, '--token', token, '--dir', dir, '--ca-fingerprint', gw.ca.material.root.fingerprint256], 60_000);
  if (r.code !== 0) throw new Error(`enroll ${device}: ${r.stderr}`);
}

export function wottAgent(args: string[]): ReturnType<typeof run> {
  return run(process.execPath, [CLI, 'agent', ...args], 60_000);
}
