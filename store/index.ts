/**
 * store/: everything wott persists, behind narrow asynchronous interfaces (a PostgreSQL client is asynchronous, so
 * the signatures are, whatever the backend). Only this folder holds SQL or a database handle.
 */
export { migrate, SchemaError, type Migration } from './sqlite/migrate.js';
export type { LoginLinkRecord, RedeemResult, SessionRecord, SessionStore } from './sessions.js';
export { SqliteSessionStore } from './sqlite/sessions.js';
