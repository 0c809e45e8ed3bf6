/** vuln/: CVE matching of Debian packages (dpkg status and version order) against offline vulnerability data (Debian Security Tracker JSON, OSV), and the in-memory index of the stored data. */
export { compareDebianVersions, compareParsedVersions, formatDebianVersion, InvalidVersionError, isValidDebianVersion, parseDebianVersion, verrevcmp, type DebianVersion } from './dpkg-version.js';
export {
  codenameForVersion,
  CveFeedError,
  cvss3BaseScore,
  DEBIAN_RELEASES,
  DEFAULT_FEED_LIMITS,
  maxSeverity,
  mergeEntries,
  parseFeed,
  parseOsvRecords,
  parseTrackerJson,
  SEVERITIES,
  severityRank,
  urgencySeverity,
  type CveEntry,
  type FeedFormat,
  type FeedLimits,
  type FeedStats,
  type ParsedFeed,
  type Severity,
} from './feed.js';
export {
  buildIndex,
  chainChanges,
  changedSince,
  compareFindings,
  diffIndexes,
  exposeFindings,
  matchSet,
  rematchSet,
  trackerSource,
  DAEMON_SOURCES,
  debianRelease,
  exposedSources,
  groupBySource,
  isLoopback,
  matchPackages,
  type CveFinding,
  type CveIndex,
  type IndexedEntry,
  type InventoryEntry,
  type OsRelease,
  type SetMatch,
} from './match.js';
export { inventoryFromDpkgStatus, parseDpkgStatus } from './dpkg-status.js';
export { CveDatabase, type CveDatabaseOptions } from './database.js';
export { CveStoreError, FEED_NAME, type FeedOrigin, type FeedRecord, type LoadRecord } from '../store/index.js';
export { decodeFeed, DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT_MS, fetchBounded, parseInput, readFeedInputs, updateCveStore, type UpdateOptions } from './update.js';
