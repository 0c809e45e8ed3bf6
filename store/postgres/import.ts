/**
 * Moves an embedded installation (the SQLite files of a data folder) into an empty PostgreSQL database, for
 * `wott store migrate --from sqlite:DIR --to postgres://…`. Rows are copied as they are (times, statuses, serials,
 * DER, audit sequence numbers), the inventory in one transaction: all of it or none. The SQLite files are only read.
 * The change feed is not copied: PostgreSQL's triggers write a fresh one for the imported rows, and followers start
 * from a snapshot anyway. Operator sessions are not copied (operators sign in again).
 */
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { openSqliteVulnStore, vulnStorePath } from '../sqlite/vuln.js';
import { PostgresActionDecisionStore } from './actions.js';
import { PostgresCredentialStore } from './credentials.js';
import { LOCK_INVENTORY_WRITE, openPostgresInventory } from './inventory.js';
import { LOCK_CLASS } from './migrate.js';
import { inTransaction, openPool, safeLocation } from './pool.js';
import { openPostgresScoreStore } from './scores.js';
import { openPostgresVulnStore } from './vuln.js';

export interface ImportCounts {
  devices: number;
  certificates: number;
  tokens: number;
  revocations: number;
  crls: number;
  audit: number;
  scoreRecords: number;
  latestScores: number;
  history: number;
  vulnEntries: number;
  actionDecisions: number;
  credentials: number;
}

type Row = Record<string, unknown>;
const BATCH = 2000;

/** INSERT … SELECT FROM unnest(arrays): one statement per batch of rows instead of one per row. */
async function insertRows(client: pg.PoolClient, table: string, columns: Array<[name: string, type: string]>, rows: Row[], suffix = ''): Promise<void> {
  for (let i = 0; i < rows.length; i += BATCH) {
    const batch = rows.slice(i, i + BATCH);
    const params = columns.map(([name]) => batch.map((r) => r[name] ?? null));
    const list = columns.map(([name]) => name).join(', ');
    const arrays = columns.map(([, type], n) => `$${n + 1}::${type}[]`).join(', ');
    await client.query(`INSERT INTO ${table} (${list}) ${suffix} SELECT * FROM unnest(${arrays})`, params);
  }
}

function readSqlite(path: string, read: (db: Database.Database) => void): boolean {
  if (!existsSync(path)) return false;
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    // One read transaction: a consistent picture even if something still writes (it should not: stop the gateway).
    db.transaction(() => read(db))();
  } finally {
    db.close();
  }
  return true;
}

export async function importSqliteData(dataDir: string, url: string): Promise<ImportCounts> {
  const counts: ImportCounts = { devices: 0, certificates: 0, tokens: 0, revocations: 0, crls: 0, audit: 0, scoreRecords: 0, latestScores: 0, history: 0, vulnEntries: 0, actionDecisions: 0, credentials: 0 };
  const inventoryPath = join(dataDir, 'inventory.db');
  if (!existsSync(inventoryPath)) throw new Error(`no inventory in ${dataDir} (inventory.db): nothing to migrate`);
  // Opening the stores creates and migrates the schema.
  const inventory = await openPostgresInventory(url, { max: 1 });
  const scores = await openPostgresScoreStore(url, { max: 1 });
  await Promise.all([inventory.close(), scores.close()]);
  const pool = openPool(url, { max: 1 });
  try {
    const inv: Record<string, Row[]> = {};
    readSqlite(inventoryPath, (db) => {
      for (const table of ['devices', 'certificates', 'tokens', 'revocations', 'crls', 'audit']) inv[table] = db.prepare(`SELECT * FROM ${table}`).all() as Row[];
    });
    await inTransaction(pool, async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS, LOCK_INVENTORY_WRITE]);
      const busy = (await client.query('SELECT (SELECT count(*) FROM devices) + (SELECT count(*) FROM certificates) + (SELECT count(*) FROM tokens) + (SELECT count(*) FROM audit) AS n')).rows[0]!.n;
      if (Number(busy) > 0) throw new Error(`the PostgreSQL database ${safeLocation(url)} already holds an inventory: migrate into an empty database`);
      await insertRows(client, 'devices', [['id', 'text'], ['state', 'text'], ['tags', 'text'], ['created_at', 'text'], ['updated_at', 'text'], ['tpm_key', 'bytea']], inv.devices!);
      // replaced_by refers to other certificates: set once they are all in.
      const certificates = inv.certificates!;
      await insertRows(
        client,
        'certificates',
        [['serial', 'text'], ['device_id', 'text'], ['kind', 'text'], ['common_name', 'text'], ['not_before', 'text'], ['not_after', 'text'], ['fingerprint', 'text'], ['status', 'text'], ['issued_at', 'text'], ['der', 'bytea']],
        certificates,
      );
      const replaced = certificates.filter((c) => c.replaced_by);
      if (replaced.length) {
        await client.query('UPDATE certificates c SET replaced_by = r.by FROM unnest($1::text[], $2::text[]) AS r(serial, by) WHERE c.serial = r.serial', [
          replaced.map((c) => c.serial),
          replaced.map((c) => c.replaced_by),
        ]);
      }
      await insertRows(client, 'tokens', [['hash', 'text'], ['device_id', 'text'], ['created_at', 'text'], ['expires_at', 'text'], ['used_at', 'text']], inv.tokens!);
      await insertRows(client, 'revocations', [['serial', 'text'], ['revoked_at', 'text'], ['reason', 'text']], inv.revocations!);
      // One at a time, oldest first: a CRL number only grows (a trigger holds the table to it).
      for (const crl of [...inv.crls!].sort((a, b) => Number(a.number) - Number(b.number))) {
        await client.query('INSERT INTO crls (number, this_update, next_update, der) VALUES ($1, $2, $3, $4)', [crl.number, crl.this_update, crl.next_update, crl.der]);
      }
      // The audit log keeps its sequence numbers; new entries continue after them.
      await insertRows(
        client,
        'audit',
        [['seq', 'bigint'], ['time', 'text'], ['actor', 'text'], ['action', 'text'], ['device', 'text'], ['target', 'text'], ['outcome', 'text'], ['detail', 'text']],
        inv.audit!,
        'OVERRIDING SYSTEM VALUE',
      );
      await client.query("SELECT setval(pg_get_serial_sequence('audit', 'seq'), greatest((SELECT max(seq) FROM audit), 1), (SELECT count(*) > 0 FROM audit))");
    });
    counts.devices = inv.devices!.length;
    counts.certificates = inv.certificates!.length;
    counts.tokens = inv.tokens!.length;
    counts.revocations = inv.revocations!.length;
    counts.crls = inv.crls!.length;
    counts.audit = inv.audit!.length;

    const sc: Record<string, Row[]> = {};
    const hasScores = readSqlite(join(dataDir, 'scoring', 'scores.db'), (db) => {
      for (const table of ['records', 'latest', 'history']) sc[table] = db.prepare(`SELECT * FROM ${table}`).all() as Row[];
    });
    if (hasScores) {
      await inTransaction(pool, async (client) => {
        await client.query('DELETE FROM score_records');
        await client.query('DELETE FROM score_latest');
        await client.query('DELETE FROM score_history');
        await insertRows(client, 'score_records', [['device', 'text'], ['data', 'text']], sc.records!);
        await insertRows(client, 'score_latest', [['device', 'text'], ['message', 'text'], ['findings', 'text']], sc.latest!);
        await insertRows(client, 'score_history', [['device', 'text'], ['time', 'bigint'], ['score', 'float8'], ['model', 'text'], ['factors', 'text']], sc.history!);
      });
      counts.scoreRecords = sc.records!.length;
      counts.latestScores = sc.latest!.length;
      counts.history = sc.history!.length;
    }
  } finally {
    await pool.end();
  }

  if (existsSync(vulnStorePath(dataDir))) {
    const from = await openSqliteVulnStore(dataDir);
    try {
      const status = await from.status();
      if (status) {
        const to = await openPostgresVulnStore(url);
        try {
          // Feed by feed, so the copy merges updates by source as the original does.
          const loads = await Promise.all(status.feeds.map(async (f) => ({ feed: f.name, entries: await from.entries(f.name), origins: f.origins })));
          await to.replace(loads, new Date(status.loadedAt));
          counts.vulnEntries = loads.reduce((sum, l) => sum + l.entries.length, 0);
        } finally {
          await to.close();
        }
      }
    } finally {
      await from.close();
    }
  }

  if (existsSync(join(dataDir, 'actions.db'))) {
    let rows: Row[] = [];
    readSqlite(join(dataDir, 'actions.db'), (db) => void (rows = db.prepare('SELECT * FROM action_decisions').all() as Row[]));
    const to = await PostgresActionDecisionStore.open(url);
    try {
      for (const r of rows) {
        await to.put({ device: r.device as string, action: r.action as string, kind: r.kind as 'snooze' | 'ignore', until: (r.until as string | null) ?? null, actor: r.actor as string, time: r.time as string });
      }
      counts.actionDecisions = rows.length;
    } finally {
      await to.close();
    }
  }
  // Credentials as they are: ciphertexts sealed under credentials.key (copied with ca/, never into the database),
  // the versions each name had, exposures, deliveries, and the id of the key.
  const cr: Record<string, Row[]> = {};
  const hasCredentials = readSqlite(join(dataDir, 'credentials.db'), (db) => {
    const tables = new Set((db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>).map((r) => r.name));
    for (const table of ['credentials', 'credential_versions', 'credential_exposures', 'credential_deliveries', 'credential_key']) cr[table] = tables.has(table) ? (db.prepare(`SELECT * FROM ${table}`).all() as Row[]) : [];
  });
  if (hasCredentials) {
    await (await PostgresCredentialStore.open(url, { max: 1 })).close();
    const credPool = openPool(url, { max: 1 });
    try {
      await inTransaction(credPool, async (client) => {
        if (Number((await client.query('SELECT count(*) AS n FROM credentials')).rows[0]!.n) > 0) throw new Error(`the PostgreSQL database ${safeLocation(url)} already holds credentials: migrate into an empty database`);
        await insertRows(
          client,
          'credentials',
          [['name', 'text'], ['version', 'int4'], ['tags', 'text'], ['min_score', 'float8'], ['linux_user', 'text'], ['ttl_ms', 'int8'], ['expires_at', 'text'], ['created_at', 'text'], ['updated_at', 'text'], ['size', 'int4'], ['sealed', 'bytea']],
          cr.credentials!,
        );
        // A version-1 file has no credential_versions: the stored versions are the highest ones.
        const versions = cr.credential_versions!.length ? cr.credential_versions! : cr.credentials!.map((c) => ({ name: c.name, last: c.version }));
        await insertRows(client, 'credential_versions', [['name', 'text'], ['last', 'int4']], versions);
        await insertRows(client, 'credential_exposures', [['name', 'text'], ['device', 'text'], ['version', 'int4'], ['reason', 'text'], ['time', 'text']], cr.credential_exposures!);
        await insertRows(client, 'credential_deliveries', [['device', 'text'], ['name', 'text'], ['version', 'int4'], ['serial', 'text'], ['time', 'text']], cr.credential_deliveries!);
        if (cr.credential_key!.length) await client.query('INSERT INTO credential_key (id, key_id) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET key_id = excluded.key_id', [cr.credential_key![0]!.key_id]);
        await client.query('UPDATE credential_generation SET n = n + 1 WHERE id = 1');
      });
      counts.credentials = cr.credentials!.length;
    } finally {
      await credPool.end();
    }
  }
  return counts;
}
