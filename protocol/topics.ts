/**
 * Every wott/v1 topic name. No other folder spells a topic string: they call these builders and parsers.
 */
import { assertDeviceId, isDeviceId } from './device-id.js';

export const PROTOCOL_VERSION = 'v1';
/** The protected namespace: every version lives below it. */
export const NAMESPACE = 'wott';
export const TOPIC_ROOT = `${NAMESPACE}/${PROTOCOL_VERSION}`;

export type TopicKind = 'telemetry' | 'events' | 'reports' | 'scores' | 'credentials' | 'lateral';

export const topics = {
  /** Agent state reports; only `device` may publish here. */
  telemetry: (device: string) => `${TOPIC_ROOT}/telemetry/${assertDeviceId(device)}`,
  /** Broker-observed behaviour; only the broker publishes here. */
  events: (device: string) => `${TOPIC_ROOT}/events/${assertDeviceId(device)}`,
  /** Peer reports: `reporter` says something about `subject`. */
  reports: (reporter: string, subject: string) =>
    `${TOPIC_ROOT}/reports/${assertDeviceId(reporter)}/${assertDeviceId(subject)}`,
  /** Retained Trust Scores; only the scoring identity publishes here. */
  scores: (device: string) => `${TOPIC_ROOT}/scores/${assertDeviceId(device)}`,
  /** Credentials for one device (JWE to its key); only the gateway itself publishes, only `device` reads. */
  credentials: (device: string) => `${TOPIC_ROOT}/credentials/${assertDeviceId(device)}`,
  /**
   * Lateral-movement notices about `subject` (not retained); only the scoring identity publishes. Scoring runs on
   * one node of a cluster, the fleet events of every node follow this topic.
   */
  lateral: (subject: string) => `${TOPIC_ROOT}/lateral/${assertDeviceId(subject)}`,
} as const;

/** Subscription filters used by the consumers of each stream. */
export const topicFilters = {
  namespace: `${TOPIC_ROOT}/#`,
  telemetry: `${TOPIC_ROOT}/telemetry/+`,
  events: `${TOPIC_ROOT}/events/+`,
  reports: `${TOPIC_ROOT}/reports/+/+`,
  scores: `${TOPIC_ROOT}/scores/+`,
  lateral: `${TOPIC_ROOT}/lateral/+`,
  /** Everything isProtocolTopic() protects (the whole wott/ tree, every version), for brokers that need it as an ACL. */
  protectedNamespace: `${NAMESPACE}/#`,
} as const;

/** Filters bound to one device, for brokers that express the namespace rules as ACLs (Mosquitto Dynamic Security). */
export const deviceFilters = {
  /** Every peer report `reporter` may publish (about any subject). */
  reportsBy: (reporter: string) => `${TOPIC_ROOT}/reports/${assertDeviceId(reporter)}/+`,
} as const;

export type ParsedTopic =
  | { kind: 'telemetry' | 'events' | 'scores' | 'credentials' | 'lateral'; device: string }
  | { kind: 'reports'; reporter: string; subject: string };

/** Parses a concrete wott/v1 topic; undefined for anything else (including malformed ids). */
export function parseTopic(topic: string): ParsedTopic | undefined {
  if (!topic.startsWith(TOPIC_ROOT + '/')) return undefined;
  const parts = topic.slice(TOPIC_ROOT.length + 1).split('/');
  const [kind, a, b] = parts;
  if ((kind === 'telemetry' || kind === 'events' || kind === 'scores' || kind === 'credentials' || kind === 'lateral') && parts.length === 2 && isDeviceId(a)) {
    return { kind, device: a };
  }
  if (kind === 'reports' && parts.length === 3 && isDeviceId(a) && isDeviceId(b)) {
    return { kind, reporter: a, subject: b };
  }
  return undefined;
}

/** Built once: isProtocolTopic runs on every publish. */
const NAMESPACE_PREFIX = `${NAMESPACE}/`;

/** True when the topic (or filter) lies in the protected wott/ namespace. */
export function isProtocolTopic(topicOrFilter: string): boolean {
  return topicOrFilter === NAMESPACE || topicOrFilter.startsWith(NAMESPACE_PREFIX);
}
