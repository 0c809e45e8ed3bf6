/**
 * The curl example for the API (docs/api.md, moved there from the README), run as written: the block after the marker comment, with only the
 * gateway's port (8443 → the test's) and `npx wott` (→ this build's CLI) put in.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { CLI, requireCommand, tempDir } from '../helpers.js';
import { enroll, testGateway } from '../mqtt-helpers.js';

function readmeBlock(): string {
  const readme = readFileSync(new URL('../../docs/api.md', import.meta.url), 'utf8');
  const at = readme.indexOf('<!-- test/api/readme.test.ts runs this block -->');
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(at));
  if (at < 0 || !block) throw new Error('docs/api.md: the API curl block is missing');
  return block[1]!;
}

t.test('the docs/api.md curl example works with an operator certificate', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl') || !requireCommand(t, 'curl', 'curl')) return;
  const cwd = tempDir(t);
  // The commands use the default data folder, ./wott-data.
  const gw = await testGateway(t, { dataDir: join(cwd, 'wott-data'), hosts: ['localhost'] });
  await enroll(gw, tempDir(t), 'kitchen-sensor');
  const script = readmeBlock().replaceAll('npx wott ', `${process.execPath} ${CLI} `).replaceAll('localhost:8443', `localhost:${gw.httpsPort}`);
  t.match(script, /curl -sSf --cacert ops\/ca.crt --cert ops\/alice.crt --key ops\/alice.key/, 'the block is the curl example');
  const ran = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn('sh', ['-e', '-c', script], { cwd, timeout: 60_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  t.equal(ran.code, 0, `the block ran (${ran.stderr.slice(0, 400)})`);
  t.match(ran.stdout, /"identity":"cert:operator:alice"/, 'whoami names the operator');
  t.match(ran.stdout, /"items":\[\{"id":"kitchen-sensor","state":"active"/, 'the device list');
  t.match(ran.stdout, /"id":"kitchen-sensor","state":"quarantined"/, 'the quarantine');
  t.match(ran.stdout, /"device":"hall-sensor","token":"[A-Za-z0-9_-]+"/, 'the token');
  t.equal((await gw.ca.inventory.device('kitchen-sensor'))?.state, 'quarantined');
  t.match((await gw.ca.inventory.auditEntries()).at(-1), { actor: 'cert:operator:alice', action: 'token.create', device: 'hall-sensor', outcome: 'ok' });
});
