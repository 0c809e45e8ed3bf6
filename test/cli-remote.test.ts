/**
 * `wott --server URL --credentials DIR device …` against a real `wott gateway` process: list and show with
 * scores, claim / reject / quarantine / release / tag as an operator (audited as the certificate's identity), refused with
 * a viewer certificate on a mutating command (nothing changes), and the same commands on the local data folder.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { claimEnroll } from './est-helpers.js';
import { CLI, requireCommand, startGatewayProcess, tempDir, writeTemp } from './helpers.js';
import { run } from './mqtt-helpers.js';

t.test('the device commands work remotely through the API and locally through FleetService', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const dir = tempDir(t);
  const data = join(dir, 'data');
  const config = writeTemp(dir, 'wott.yaml', 'enrollment:\n  claim: true\n');
  const { child, port } = await startGatewayProcess(data, ['--config', config]);
  t.teardown(() => void child.kill('SIGKILL'));
  const caPem = readFileSync(join(data, 'ca', 'intermediate.crt'), 'utf8') + readFileSync(join(data, 'ca', 'root.crt'), 'utf8');
  const wott = (args: string[]) => run('node', [CLI, ...args], 30_000);
  const ops = join(dir, 'ops');
  const viewers = join(dir, 'viewers');
  t.equal((await wott(['operator', 'create', 'olga', '--role', 'operator', '--out', ops, '--data', data])).code, 0, 'an operator certificate');
  t.equal((await wott(['operator', 'create', 'vic', '--role', 'viewer', '--out', viewers, '--data', data])).code, 0, 'a viewer certificate');
  const enrolled = await claimEnroll({ httpsPort: port, caPem }, dir, 'rc-dev');
  t.equal(enrolled.reply.status, 200, 'a device enrolled unclaimed');
  const server = `https://localhost:${port}`;
  const remote = (creds: string, args: string[]) => wott(['--server', server, '--credentials', creds, 'device', ...args]);

  const listed = await remote(viewers, ['list']);
  t.equal(listed.code, 0, `remote list as a viewer (${listed.stderr})`);
  t.match(listed.stdout, /^ID\tSTATE\tSCORE/m);
  t.match(listed.stdout, /^rc-dev\tunclaimed\t0\.000\t/m, 'the device with the score the broker enforces (unclaimed: 0)');
  const json = await remote(viewers, ['list', '--json', '--state', 'unclaimed']);
  t.match(JSON.parse(json.stdout.trim().split('\n')[0]!), { id: 'rc-dev', state: 'unclaimed', score: 0, connected: null });

  const refused = await remote(viewers, ['claim', 'rc-dev']);
  t.equal(refused.code, 2, 'a viewer may not claim: refused');
  t.match(refused.stderr, /403/);
  t.match((await remote(viewers, ['show', 'rc-dev', '--json'])).stdout, /"state": "unclaimed"/, 'nothing changed');

  // One that nobody recognises: rejected from the claim queue (its certificate revoked), by an operator only.
  const stranger = await claimEnroll({ httpsPort: port, caPem }, dir, 'rc-stranger');
  t.equal(stranger.reply.status, 200, 'another device enrolled unclaimed');
  t.equal((await remote(viewers, ['reject', 'rc-stranger'])).code, 2, 'a viewer may not reject');
  const rejected = await remote(ops, ['reject', 'rc-stranger']);
  t.equal(rejected.code, 0, `reject as an operator (${rejected.stderr})`);
  t.match(rejected.stdout, /^rc-stranger is now revoked; revoked [0-9a-f]+\n$/);
  t.match(JSON.parse((await remote(viewers, ['show', 'rc-stranger', '--json'])).stdout), { state: 'revoked', certificates: [{ status: 'revoked' }] });

  const claimed = await remote(ops, ['claim', 'rc-dev']);
  t.equal(claimed.code, 0, `claim as an operator (${claimed.stderr})`);
  t.equal(claimed.stdout, 'rc-dev is now active\n');
  t.equal((await remote(ops, ['quarantine', 'rc-dev'])).stdout, 'rc-dev is now quarantined\n');
  t.equal((await remote(ops, ['release', 'rc-dev'])).stdout, 'rc-dev is now active\n');
  t.equal((await remote(ops, ['tag', 'rc-dev', '--set', 'lab,site:berlin'])).stdout, 'rc-dev tags: lab, site:berlin\n');
  const revoke = await remote(ops, ['revoke', 'rc-dev']);
  t.equal(revoke.code, 2, 'revoking needs an admin');
  const shown = JSON.parse((await remote(ops, ['show', 'rc-dev', '--json'])).stdout);
  t.match(shown, { id: 'rc-dev', state: 'active', tags: ['lab', 'site:berlin'], certificates: [{ status: 'active' }] });
  t.same(
    shown.audit.filter((e: { outcome: string }) => e.outcome === 'ok').map((e: { actor: string; action: string }) => `${e.actor} ${e.action}`).slice(0, 4),
    ['cert:operator:olga device.tag', 'cert:operator:olga device.release', 'cert:operator:olga device.quarantine', 'cert:operator:olga device.claim'],
    'audited as the operator certificate',
  );
  const text = await remote(ops, ['show', 'rc-dev']);
  t.match(text.stdout, /^rc-dev {2}active {2}score /);
  t.match(text.stdout, /certificates:\n {2}[0-9a-f]+ {2}active/);
  t.equal((await remote(ops, ['show', 'nobody'])).code, 2, 'an unknown device');

  // Tags added and removed, keeping the others (POST /devices/{id}/tags).
  t.equal((await remote(ops, ['tag', 'rc-dev', 'cam,door', 'extra'])).stdout, 'rc-dev tags: lab, site:berlin, cam, door, extra\n', 'added, the others kept');
  t.equal((await remote(ops, ['tag', 'rc-dev', 'door', 'extra', 'absent', '--remove'])).stdout, 'rc-dev tags: lab, site:berlin, cam\n', 'removed (an absent tag is no error)');
  const viewerTag = await remote(viewers, ['tag', 'rc-dev', 'cam', '--remove']);
  t.equal(viewerTag.code, 2, 'a viewer may not change tags');
  t.match(viewerTag.stderr, /403/);
  t.equal((await remote(ops, ['tag', 'rc-dev', 'Bad Tag'])).code, 2, 'an invalid tag is refused');
  t.equal((await remote(ops, ['tag', 'rc-dev', '--remove', 'cam'])).stdout, 'rc-dev tags: lab, site:berlin\n', '--remove before the tags works too');

  // The same commands on the local data folder (the gateway's own host).
  const local = await wott(['device', 'list', '--data', data, '--config', config]);
  t.match(local.stdout, /^rc-dev\tactive\t/m, `local list (${local.stderr})`);
  const localShow = JSON.parse((await wott(['device', 'show', 'rc-dev', '--json', '--data', data, '--config', config])).stdout);
  t.match(localShow, { id: 'rc-dev', tags: ['lab', 'site:berlin'] });
  const localQ = await wott(['device', 'quarantine', 'rc-dev', '--data', data, '--config', config]);
  t.equal(localQ.stdout, 'rc-dev is now quarantined\n');
  t.match(JSON.parse((await remote(viewers, ['show', 'rc-dev', '--json'])).stdout).audit[0], { actor: /^local:/, action: 'device.quarantine' }, 'the local action, audited as the OS user, seen remotely');

  // Bad remote options are a clear error.
  t.match((await wott(['--server', `http://localhost:${port}`, '--credentials', ops, 'device', 'list'])).stderr, /https:\/\//);
  t.match((await wott(['--server', server, 'device', 'list'])).stderr, /--credentials/);
  t.match((await wott(['--server', server, '--credentials', join(dir, 'nowhere'), 'device', 'list'])).stderr, /no such folder/);
});
