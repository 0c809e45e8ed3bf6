/**
 * The vulnerability store on PostgreSQL: the VulnStore contract on a real server, a newer schema refused with a
 * CveStoreError, and two loads from two processes' pools at once landing whole, one after the other.
 */
import t from 'tap';
import { openPostgresVulnStore, type VulnEntry } from '../../store/index.js';
import { startPostgres } from '../postgres-helpers.js';
import { vulnStoreContract } from './vuln-contract.js';

const server = await startPostgres(t);

if (server) {
  t.test('contract', async (t) => {
    const url = await server.newDatabase();
    vulnStoreContract(t, () => openPostgresVulnStore(url));
  });

  t.test('a database from a newer wott is refused with a CveStoreError', async (t) => {
    const url = await server.newDatabase();
    await (await openPostgresVulnStore(url)).close();
    await server.sql(new URL(url).pathname.slice(1), "UPDATE wott_schema SET version = 2 WHERE component = 'vuln'");
    await t.rejects(openPostgresVulnStore(url), { name: 'CveStoreError', message: /written by a newer wott \(schema 2, this wott knows 1\); upgrade wott/ });
  });

  t.test('large loads from two pools at once: each lands whole, the later generation wins', async (t) => {
    const url = await server.newDatabase();
    const [a, b] = await Promise.all([openPostgresVulnStore(url), openPostgresVulnStore(url)]);
    t.teardown(() => Promise.all([a.close(), b.close()]));
    const load = (tag: string): VulnEntry[] =>
      Array.from({ length: 12_000 }, (_, i) => ({ id: `CVE-2099-${i}`, source: `pkg${i % 300}`, release: 'bookworm', fixed: `${tag}-${i}`, severity: 'low', remote: null, description: `${tag} ${i}` }));
    const [ra, rb] = await Promise.all([a.replace([{ feed: 'osv', entries: load('a'), origins: [] }]), b.replace([{ feed: 'osv', entries: load('b'), origins: [] }])]);
    t.not(ra.generation, rb.generation);
    const winner = ra.generation > rb.generation ? 'a' : 'b';
    const entries = await a.entries();
    t.equal(entries.length, 12_000);
    t.ok(entries.every((e) => e.fixed!.startsWith(`${winner}-`) && e.description!.startsWith(`${winner} `)), `only load ${winner}'s entries`);
    t.equal((await b.matchingData()).generation, Math.max(ra.generation, rb.generation));
  });
}
