/**
 * Version assignment is a compare-and-set (issue 17): sets and rotations of one name made at the same time — through
 * one service, and by `wott credential rotate` processes beside a running gateway — each get a version of their own,
 * every value is sealed under its own version, and the audit log names each version once.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { CLI } from '../helpers.js';
import { testGateway } from '../mqtt-helpers.js';

function wott(args: string[], stdin: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI, ...args], { timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin!.end(stdin);
  });
}

t.test('concurrent sets and rotations through the service', async (t) => {
  const gw = await testGateway(t);
  const ops = gw.credentials.as('local:tester');
  await ops.set('api-key', Buffer.from('v1'), { tags: ['db'], minScore: 0.8 });
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) => (i % 4 === 0 ? ops.set('api-key', Buffer.from(`s${i}`), { tags: ['db'], minScore: 0.5 }) : ops.rotate('api-key', Buffer.from(`r${i}`)))),
  );
  t.same(
    results.map((r) => r.version).sort((a, b) => a - b),
    Array.from({ length: 20 }, (_, i) => i + 2),
    'versions 2 … 21, each once',
  );
  t.equal((await ops.show('api-key'))?.version, 21);
  const audited = (await gw.ca.inventory.auditEntries()).filter((e) => (e.action === 'credential.set' || e.action === 'credential.rotate') && e.outcome === 'ok');
  const versions = audited.map((e) => Number(/^version (\d+)/.exec(e.detail ?? '')?.[1])).sort((a, b) => a - b);
  t.same(versions, Array.from({ length: 21 }, (_, i) => i + 1), 'the audit log names each version once');
  // A creation race: both sets of a new name succeed, as versions 1 and 2.
  const created = await Promise.all([ops.set('new-one', Buffer.from('a'), { tags: ['db'], minScore: 0.8 }), ops.set('new-one', Buffer.from('b'), { tags: ['db'], minScore: 0.8 })]);
  t.same(created.map((c) => c.version).sort(), [1, 2]);
});

t.test('`wott credential rotate` in several processes at once, beside the gateway', async (t) => {
  const gw = await testGateway(t);
  await gw.credentials.as('local:tester').set('db-password', Buffer.from('v1'), { tags: ['db'], minScore: 0.8 });
  const n = 4;
  const runs = await Promise.all(Array.from({ length: n }, (_, i) => wott(['credential', 'rotate', 'db-password', '--value-stdin', '--data', gw.dir], `pw-${i}`)));
  for (const run of runs) t.equal(run.code, 0, run.stderr);
  const versions = runs.map((r) => Number(/rotated to version (\d+)/.exec(r.stdout)?.[1])).sort((a, b) => a - b);
  t.same(versions, Array.from({ length: n }, (_, i) => i + 2), 'each process got its own version');
  t.equal((await gw.credentials.show('db-password'))?.version, n + 1);
});
