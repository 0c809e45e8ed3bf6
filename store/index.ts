/**
 * store/: everything wott persists, behind narrow asynchronous interfaces (a PostgreSQL client is asynchronous, so
 * the signatures are, whatever the backend). Only this folder holds SQL or a database handle.
 */
export { migrate, SchemaError, type Migration } from './sqlite/migrate.js';
export { DEFAULT_HISTORY_RETENTION_MS, type HistoryRow, type ScoreStore, type ScoreStoreOptions, type ScoringRecord, type StoredFinding, type StoredScore } from './scores.js';
export { CveStoreError, type FeedOrigin, type FeedStats, type LoadRecord, type MatchingData, type VulnEntry, type VulnSeverity, type VulnStore } from './vuln.js';
export { openSqliteScoreStore } from './sqlite/scores.js';
export { openSqliteVulnStore, vulnStorePath } from './sqlite/vuln.js';
