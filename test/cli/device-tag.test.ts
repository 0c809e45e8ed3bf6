/**
 * `wott device tag ID TAG… [--remove]` on the local data folder, and `POST /api/v1/devices/{id}/tags` {add, remove}:
 * tags are added and removed keeping the others, in one transaction (concurrent changes of different tags through
 * the API all survive), audited; bad input is refused with nothing changed.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { CLI, tempDir } from '../helpers.js';
import { api, operatorCredentials, sessionFor } from '../api/helpers.js';
import { enroll, testGateway } from '../mqtt-helpers.js';

function wott(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

t.test('the CLI adds and removes tags on the local data folder', async (t) => {
  const gw = await testGateway(t);
  await enroll(gw, tempDir(t), 'boiler');
  const data = ['--data', gw.dir];
  t.equal((await wott(['device', 'tag', 'boiler', '--set', 'site:berlin,heating', ...data])).stdout, 'boiler tags: site:berlin, heating\n');
  t.equal((await wott(['device', 'tag', 'boiler', 'db', 'cam', ...data])).stdout, 'boiler tags: site:berlin, heating, db, cam\n');
  t.equal((await wott(['device', 'tag', 'boiler', 'heating,cam', '--remove', ...data])).stdout, 'boiler tags: site:berlin, db\n');
  t.same((await gw.ca.inventory.device('boiler'))?.tags, ['site:berlin', 'db'], 'in the inventory');

  for (const [args, why] of [
    [['device', 'tag', 'boiler'], /give tags to add/],
    [['device', 'tag', 'boiler', '--remove'], /give tags to remove/],
    [['device', 'tag', 'boiler', 'x', '--set', 'y'], /--set replaces every tag/],
    [['device', 'tag', 'boiler', 'Bad Tag'], /invalid tag/],
    [['device', 'tag', 'ghost', 'db'], /ghost/],
  ] as const) {
    const r = await wott([...args, ...data]);
    t.equal(r.code, 2, `${args.join(' ')}: refused`);
    t.match(r.stderr, why);
  }
  t.same((await gw.ca.inventory.device('boiler'))?.tags, ['site:berlin', 'db'], 'nothing changed');
  const audit = (await gw.ca.inventory.auditEntries()).filter((e) => e.action === 'device.tag' && e.device === 'boiler');
  t.match(
    audit.map((e) => [e.outcome, e.detail]),
    [
      ['ok', 'tags site:berlin, heating'],
      ['ok', 'tags site:berlin, heating, db, cam'],
      ['ok', 'tags site:berlin, db'],
      ['refused', /invalid tag/],
    ],
    'each change audited',
  );
});

t.test('POST /devices/{id}/tags: add and remove, concurrent changes all kept, roles and bad bodies refused', async (t) => {
  const gw = await testGateway(t);
  await enroll(gw, tempDir(t), 'cam-1');
  const operator = await operatorCredentials(gw, 'operator', 'olga');
  const viewer = await operatorCredentials(gw, 'viewer', 'vic');
  const change = (body: unknown, who = operator) => api(gw, 'POST', '/devices/cam-1/tags', { ...who, body });
  const added = await change({ add: ['site:a', 'cam'] });
  t.equal(added.status, 200, added.body);
  t.same(added.json.tags, ['site:a', 'cam']);
  const both = await change({ add: ['db'], remove: ['cam', 'absent'] });
  t.same(both.json.tags, ['site:a', 'db'], 'removed and added in one request');
  // Ten operators add ten different tags at the same time: none is lost (a PUT of a read list could lose some).
  const many = await Promise.all(Array.from({ length: 10 }, (_, i) => change({ add: [`t${i}`] })));
  t.ok(many.every((r) => r.status === 200));
  t.same([...(await gw.ca.inventory.device('cam-1'))!.tags].sort(), ['db', 'site:a', ...Array.from({ length: 10 }, (_, i) => `t${i}`)].sort(), 'every concurrent change kept');
  const session = await sessionFor(gw, 'operator', 'sam');
  const viaSession = await api(gw, 'POST', '/devices/cam-1/tags', { cookie: session.cookie, csrf: session.csrf, body: { remove: ['db'] } });
  t.equal(viaSession.status, 200, 'a session with its CSRF token');
  t.match((await gw.ca.inventory.auditEntries()).at(-1), { actor: 'session:operator:sam', action: 'device.tag', outcome: 'ok' });
  const before = (await gw.ca.inventory.device('cam-1'))!.tags;
  t.equal((await api(gw, 'POST', '/devices/cam-1/tags', { cookie: session.cookie, body: { remove: ['site:a'] } })).status, 403, 'a session without CSRF: refused');
  t.equal((await change({ remove: ['site:a'] }, viewer)).status, 403, 'a viewer: refused');
  for (const body of [{}, { add: [] }, { add: ['Bad Tag'] }, { add: 'db' }, { add: ['x'], other: 1 }, { remove: Array.from({ length: 33 }, (_, i) => `r${i}`) }]) {
    t.equal((await change(body)).status, 400, `${JSON.stringify(body).slice(0, 60)}: 400`);
  }
  t.equal((await api(gw, 'POST', '/devices/ghost/tags', { ...operator, body: { add: ['x'] } })).status, 404, 'an unknown device: 404');
  t.same((await gw.ca.inventory.device('cam-1'))!.tags, before, 'nothing changed by the refused requests');
});
