/**
 * The audit log: every operator action through the CLI is recorded with who (the OS user), what, when and the
 * outcome, refused ones as refused; tokens never appear in it; the log cannot be edited.
 */
import t from 'tap';
import { statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority } from '../ca/index.js';
import { CLI, makeCsr, requireCommand, tempDir } from './helpers.js';
import { run } from './mqtt-helpers.js';

const wott = (dir: string, ...args: string[]) => run(process.execPath, [CLI, ...args, '--data', dir]);

t.test('operator actions through the CLI are in the audit log, refused ones too', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const dir = tempDir(t);
  t.equal((await wott(dir, 'ca', 'init')).code, 0, 'a CA first: the other commands do not make one');
  const token = (await wott(dir, 'token', 'create', '--device', 'boiler')).stdout.trim();
  t.match(token, /^\S{20,}$/, 'a token');
  // The device enrolls with it (not an operator action: not in the audit log).
  const ca = await CertificateAuthority.open({ dataDir: dir });
  await ca.enrollWithToken('boiler', token, makeCsr(dir, '/CN=boiler').der);
  await ca.close();
  t.equal((await wott(dir, 'device', 'quarantine', 'boiler')).code, 0);
  t.equal((await wott(dir, 'device', 'release', 'boiler')).code, 0);
  t.equal((await wott(dir, 'device', 'claim', 'boiler')).code, 2, 'claiming an active device is refused');
  t.equal((await wott(dir, 'device', 'quarantine', 'ghost')).code, 2, 'quarantining an unknown device is refused');
  t.equal((await wott(dir, 'ca', 'service', '--role', 'admin', '--name', 'ops', '--out', tempDir(t))).code, 0);
  t.equal((await wott(dir, 'device', 'tag', 'boiler', '--set', 'site:berlin,heating')).code, 0);
  const badTag = await wott(dir, 'device', 'tag', 'boiler', '--set', 'Bad Tag');
  t.equal(badTag.code, 2, 'an invalid tag is refused');
  t.match(badTag.stderr, /invalid tag "Bad Tag"/);
  const copy = join(tempDir(t), 'inventory-copy.db');
  t.equal((await wott(dir, 'ca', 'backup', '--out', copy)).code, 0);
  t.equal(statSync(copy).mode & 0o777, 0o600, 'the copy is private');
  t.equal((await wott(dir, 'ca', 'backup', '--out', copy)).code, 2, 'an existing file is never overwritten');
  t.equal((await wott(dir, 'ca', 'revoke', '--device', 'boiler', '--reason', 'keyCompromise')).code, 0);

  const lines = (await wott(dir, 'audit', 'log', '--json')).stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const me = `local:${userInfo().username}`;
  t.match(lines, [
    { action: 'token.create', device: 'boiler', outcome: 'ok', actor: me, detail: /^expires / },
    { action: 'device.quarantine', device: 'boiler', outcome: 'ok' },
    { action: 'device.release', device: 'boiler', outcome: 'ok' },
    { action: 'device.claim', device: 'boiler', outcome: 'refused', detail: /is active, not unclaimed/ },
    { action: 'device.quarantine', device: 'ghost', outcome: 'refused', detail: /no device "ghost"/ },
    { action: 'service.issue', target: 'admin:ops', outcome: 'ok', detail: /^serial / },
    { action: 'device.tag', device: 'boiler', outcome: 'ok', detail: 'tags site:berlin, heating' },
    { action: 'device.tag', device: 'boiler', outcome: 'refused', detail: /invalid tag/ },
    { action: 'inventory.backup', target: copy, outcome: 'ok' },
    { action: 'certificate.revoke', device: 'boiler', outcome: 'ok', detail: /reason keyCompromise; revoked [0-9a-f]+/ },
  ]);
  t.equal(lines.length, 10);
  t.ok(lines.every((l) => typeof l.time === 'string' && !Number.isNaN(Date.parse(l.time as string))), 'each entry has its time');
  const all = (await wott(dir, 'audit', 'log')).stdout;
  t.notOk(all.includes(token), 'the token itself is never recorded');
  t.match(all, new RegExp(`${me}  device.claim boiler  refused: `));
  const ghost = (await wott(dir, 'audit', 'log', '--device', 'ghost', '--json')).stdout.trim().split('\n');
  t.equal(ghost.length, 1, '--device filters');
  t.equal((await wott(dir, 'audit', 'log', '--device', '../etc')).code, 2, 'a device filter is checked as a device id');
  // (That the log cannot be edited even by someone holding the database is a store test: test/store/.)
});
