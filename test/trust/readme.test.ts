/**
 * The 15-line service of docs/api.md (moved there from the README), run as written (only its file names, server URL and port filled in): a device at
 * 0.95 is served, one below 0.8 gets 403 with the reason.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { requireCommand, tempDir } from '../helpers.js';
import { connect, enroll, serviceCredentials, setScore, testGateway } from '../mqtt-helpers.js';
import { operatorCredentials } from '../api/helpers.js';
import { callService, waitFor } from './helpers.js';
import { freePort } from '../../bench/servers.js';

t.test('the docs/api.md service works as written', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const block = /## `wott\/trust`[\s\S]*?```js\n([\s\S]*?)```/.exec(readFileSync('docs/api.md', 'utf8'))?.[1];
  t.ok(block, 'docs/api.md has the service');
  t.ok(block!.trim().split('\n').length <= 15, 'in at most 15 lines');
  const gw = await testGateway(t);
  const dir = tempDir(t);
  const good = await enroll(gw, dir, 'rd-good');
  const low = await enroll(gw, dir, 'rd-low');
  const scorer = await connect(gw, { ...(await serviceCredentials(gw, dir, 'scoring', 'rd')), id: 'scoring:rd' });
  t.teardown(() => scorer.end(true));
  await setScore(gw, scorer, 'rd-good', 0.95);
  await setScore(gw, scorer, 'rd-low', 0.5);
  const svc = await operatorCredentials(gw, 'viewer', 'readme-shop');
  const server = await gw.ca.issueServer(['localhost']);
  const files: Record<string, string> = {
    'svc/shop.crt': svc.cert,
    'svc/shop.key': svc.key,
    'svc/ca.crt': gw.caPem,
    'tls/server.key': server.keyPem,
    'tls/server.crt': server.pem + gw.ca.material.intermediate.toString(),
  };
  const port = await freePort();
  let code = block!.replace("'wott/trust'", JSON.stringify(resolve('dist/trust/index.js'))).replace('https://gw.example:8443', `https://localhost:${gw.httpsPort}`).replace('.listen(9443)', `.listen(${port}, '127.0.0.1', () => console.log('listening'))`);
  for (const [name, content] of Object.entries(files)) {
    const path = join(dir, name.replace('/', '-'));
    writeFileSync(path, content);
    code = code.replaceAll(`'${name}'`, JSON.stringify(path));
  }
  const file = join(dir, 'service.mjs');
  writeFileSync(file, code);
  const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => void child.kill());
  const out: string[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d.toString()));
  child.stderr.on('data', (d: Buffer) => out.push(d.toString()));
  await waitFor(() => out.join('').includes('listening') || child.exitCode !== null, 'the service to listen', 15_000);
  t.equal(child.exitCode, null, `the service runs (${out.join('').slice(0, 300)})`);
  t.same(await callService(port, gw.caPem, good), { status: 200, body: 'hello rd-good\n' }, 'a device at 0.95 is served');
  const refused = await callService(port, gw.caPem, low);
  t.equal(refused.status, 403, 'a device at 0.5 is refused');
  t.match(JSON.parse(refused.body), { reason: /0\.50 is below 0\.8/ }, 'with the reason');
});
