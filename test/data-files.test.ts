/**
 * Issue 11 item 15 (data folder): the data folder and everything wott keeps in it are private (folders 0700, files
 * 0600) even when the folder already existed (mkdir -p, a container volume) and the umask is 022, including files an
 * older version left 0644; and an error about a damaged database names the file.
 */
import t from 'tap';
import { chmodSync, lstatSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CertificateAuthority } from '../ca/index.js';
import { openSqliteScoreStore, openSqliteVulnStore } from '../store/index.js';
import { tempDir } from './helpers.js';
import { enroll, testGateway } from './mqtt-helpers.js';

process.umask(0o022); // the usual default: what made files 0644 before

/** Every folder and file under `dir` (itself included) with its permission bits. */
function modes(dir: string): Array<[string, number, 'dir' | 'file']> {
  const out: Array<[string, number, 'dir' | 'file']> = [[dir, statSync(dir).mode & 0o777, 'dir']];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = lstatSync(path);
    if (st.isDirectory()) out.push(...modes(path));
    else out.push([path, st.mode & 0o777, 'file']);
  }
  return out;
}

function allPrivate(t: Tap.Test, dir: string, what: string): void {
  const open = modes(dir).filter(([, mode, kind]) => mode !== (kind === 'dir' ? 0o700 : 0o600));
  t.same(open.map(([p, m]) => `${p} ${m.toString(8)}`), [], `${what}: every folder 0700, every file 0600`);
}

t.test('a data folder made beforehand (0755) ends up private, with everything the gateway writes in it', async (t) => {
  const data = join(tempDir(t), 'volume');
  mkdirSync(data, { mode: 0o755 }); // as `mkdir -p` or a container volume makes it
  chmodSync(data, 0o755);
  const creds = tempDir(t);
  const gw = await testGateway(t, { dataDir: data });
  await enroll(gw, creds, 'alice');
  await gw.ca.revoke({ deviceId: 'alice' }); // crl.der, crl.pem
  await (await openSqliteScoreStore(join(data, 'scoring', 'scores.db'))).close();
  await (await openSqliteVulnStore(data)).close();
  await gw.close();
  const names = modes(data).map(([p]) => p.slice(data.length + 1));
  for (const expected of ['ca/root.key', 'ca/intermediate.crt', 'inventory.db', 'crl.der', 'crl.pem', 'server/server.key', 'server/server.crt', 'scoring/scores.db', 'cve/cve.db']) {
    t.ok(names.includes(expected), `${expected} is there`);
  }
  allPrivate(t, data, 'after a gateway run');
});

t.test('files an older version left open (0644 / 0755) are made private when the CA opens', async (t) => {
  const data = join(tempDir(t), 'data');
  const gw = await testGateway(t, { dataDir: data });
  await gw.ca.currentCrl();
  await (await openSqliteScoreStore(join(data, 'scoring', 'scores.db'))).close();
  await (await openSqliteVulnStore(data)).close();
  await gw.close();
  for (const [path, , kind] of modes(data)) chmodSync(path, kind === 'dir' ? 0o755 : 0o644);
  writeFileSync(join(data, 'inventory.db-wal'), ''); // a -wal left behind, as open as the database was
  chmodSync(join(data, 'inventory.db-wal'), 0o644);
  t.ok(modes(data).some(([, m]) => m === 0o644), 'the folder is open before');
  const ca = await CertificateAuthority.open({ dataDir: data });
  ca.close();
  allPrivate(t, data, 'after opening the CA');

  // The stores fix their own files too (`wott scoring` and `wott cve` run without opening the CA).
  chmodSync(join(data, 'scoring'), 0o755);
  chmodSync(join(data, 'scoring', 'scores.db'), 0o644);
  chmodSync(join(data, 'cve', 'cve.db'), 0o644);
  await (await openSqliteScoreStore(join(data, 'scoring', 'scores.db'))).close();
  await (await openSqliteVulnStore(data)).close();
  t.equal(statSync(join(data, 'scoring')).mode & 0o777, 0o700);
  t.equal(statSync(join(data, 'scoring', 'scores.db')).mode & 0o777, 0o600);
  t.equal(statSync(join(data, 'cve', 'cve.db')).mode & 0o777, 0o600);
});

t.test('a damaged database: the error names the file', async (t) => {
  const garbage = Buffer.alloc(8192, 'this is not an SQLite database ');
  const data = join(tempDir(t), 'data');
  (await CertificateAuthority.open({ dataDir: data })).close();
  writeFileSync(join(data, 'inventory.db'), garbage);
  await t.rejects(CertificateAuthority.open({ dataDir: data }), { message: new RegExp(`^cannot open the CA inventory ${join(data, 'inventory.db')}: file is not a database`) });

  const scores = join(data, 'scoring', 'scores.db');
  mkdirSync(join(data, 'scoring'), { recursive: true });
  writeFileSync(scores, garbage);
  await t.rejects(openSqliteScoreStore(scores), { message: new RegExp(`^cannot open the scoring store ${scores}: file is not a database`) });

  mkdirSync(join(data, 'cve'), { recursive: true });
  writeFileSync(join(data, 'cve', 'cve.db'), garbage);
  await t.rejects(openSqliteVulnStore(data), { message: new RegExp(`^cannot open the CVE store ${join(data, 'cve', 'cve.db')}: file is not a database`) });
});
