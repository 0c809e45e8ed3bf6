/**
 * Which backend holds the data: the embedded SQLite files in the data folder (the default, unchanged), or one
 * PostgreSQL database shared by every node of a cluster (`store: { postgres: URL }` in wott.yaml). Callers name what
 * they need; only this file decides where it lives.
 */
import type { ActionDecisionStore } from './actions.js';
import type { CredentialStore } from './credentials.js';
import type { InventoryStore } from './inventory.js';
import { PostgresActionDecisionStore } from './postgres/actions.js';
import { PostgresCredentialStore } from './postgres/credentials.js';
import { openPostgresInventory } from './postgres/inventory.js';
import { openPostgresScoreStore } from './postgres/scores.js';
import { PostgresSessionStore } from './postgres/sessions.js';
import { openPostgresVulnStore } from './postgres/vuln.js';
import type { ScoreStore, ScoreStoreOptions } from './scores.js';
import type { SessionStore } from './sessions.js';
import { SqliteActionDecisionStore } from './sqlite/actions.js';
import { SqliteCredentialStore } from './sqlite/credentials.js';
import { openSqliteScoreStore } from './sqlite/scores.js';
import { SqliteSessionStore } from './sqlite/sessions.js';
import { openSqliteVulnStore } from './sqlite/vuln.js';
import type { VulnStore } from './vuln.js';

/** The `store:` section of wott.yaml. */
export interface StoreSelection {
  /** postgres://user@host:port/database (the password may come from PGPASSWORD or ~/.pgpass instead of the URL). */
  postgres?: string;
}

/** The PostgreSQL inventory when one is configured; undefined means the CA's own SQLite file (its default). */
export async function openSelectedInventory(selection: StoreSelection | undefined): Promise<InventoryStore | undefined> {
  return selection?.postgres ? openPostgresInventory(selection.postgres) : undefined;
}

export async function openSelectedActionStore(selection: StoreSelection | undefined, dataDir: string): Promise<ActionDecisionStore> {
  return selection?.postgres ? PostgresActionDecisionStore.open(selection.postgres) : SqliteActionDecisionStore.open(dataDir);
}

export async function openSelectedSessionStore(selection: StoreSelection | undefined, dataDir: string): Promise<SessionStore> {
  return selection?.postgres ? PostgresSessionStore.open(selection.postgres) : SqliteSessionStore.open(dataDir);
}

/** The score store; `sqlitePath` is the embedded file (data/scoring/scores.db). */
export async function openSelectedScoreStore(selection: StoreSelection | undefined, sqlitePath: string, options: ScoreStoreOptions = {}): Promise<ScoreStore> {
  return selection?.postgres ? openPostgresScoreStore(selection.postgres, options) : openSqliteScoreStore(sqlitePath, options);
}

export async function openSelectedVulnStore(selection: StoreSelection | undefined, dataDir: string): Promise<VulnStore> {
  return selection?.postgres ? openPostgresVulnStore(selection.postgres) : openSqliteVulnStore(dataDir);
}

/** Credentials (ciphertext only): `<dataDir>/credentials.db`, or the shared database of a cluster. */
export async function openSelectedCredentialStore(selection: StoreSelection | undefined, dataDir: string): Promise<CredentialStore> {
  return selection?.postgres ? PostgresCredentialStore.open(selection.postgres) : SqliteCredentialStore.open(dataDir);
}
