/**
 * store/: everything wott persists, behind narrow asynchronous interfaces (a PostgreSQL client is asynchronous, so
 * the signatures are, whatever the backend). Only this folder holds SQL or a database handle.
 */
export { migrate, SchemaError, type Migration } from './sqlite/migrate.js';
export { CHANGES_KEPT, subscribe } from './feed.js';
export type { Change, ChangeFeed, ChangeKind, FeedSubscription } from './feed.js';
export type {
  AuditEntry,
  CertificateFilter,
  CertificateKind,
  CertificateRow,
  CertificateStatus,
  CertificateSummary,
  CrlRow,
  DeviceRow,
  InventoryReads,
  InventorySnapshot,
  InventoryStore,
  InventoryTransaction,
  InventoryWrites,
  RevocationRow,
  TokenRow,
} from './inventory.js';
export { openSqliteInventory, SqliteInventoryStore, type SqliteInventoryOptions } from './sqlite/inventory.js';
export { DEFAULT_HISTORY_RETENTION_MS, historyFactors, type HistoryRow, type ScoreStore, type ScoreStoreOptions, type ScoringRecord, type StoredFinding, type StoredScore } from './scores.js';
export { CveStoreError, FEED_NAME, type FeedLoad, type FeedOrigin, type FeedRecord, type FeedStats, type LoadRecord, type MatchingData, type VulnEntry, type VulnSeverity, type VulnStore } from './vuln.js';
export { openSqliteScoreStore } from './sqlite/scores.js';
export { openSqliteVulnStore, vulnStorePath } from './sqlite/vuln.js';
export type { LoginLinkRecord, RedeemResult, SessionRecord, SessionStore } from './sessions.js';
export { SqliteSessionStore } from './sqlite/sessions.js';
export type { ActionDecisionRow, ActionDecisionStore } from './actions.js';
export { SqliteActionDecisionStore } from './sqlite/actions.js';
export { openPostgresInventory, PostgresInventoryStore, FEED_CHANNEL, type PostgresInventoryOptions } from './postgres/inventory.js';
export { openPostgresScoreStore } from './postgres/scores.js';
export { openPostgresVulnStore } from './postgres/vuln.js';
export { PostgresSessionStore } from './postgres/sessions.js';
export { PostgresActionDecisionStore } from './postgres/actions.js';
export {
  openSelectedActionStore,
  openSelectedCredentialStore,
  openSelectedInventory,
  openSelectedScoreStore,
  openSelectedSessionStore,
  openSelectedVulnStore,
  type StoreSelection,
} from './select.js';
export { importSqliteData, type ImportCounts } from './postgres/import.js';
export { StaleEpochError, StoreUnavailableError } from './errors.js';
export type { CredentialRow, CredentialStore, DeliveryRow, ExposureRow } from './credentials.js';
export { SqliteCredentialStore } from './sqlite/credentials.js';
export { openReportHistory, type ReportHistoryStore, type ReportKind } from './report-history.js';
export { PostgresCredentialStore } from './postgres/credentials.js';
