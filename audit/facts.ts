/**
 * What an audit looks at: one snapshot of facts, collected (audit/collect.ts) from the fleet core, the CA's files,
 * the score and vulnerability stores, the configuration and, in the gateway, the live broker. The checks and the
 * compliance mapping are pure functions of it, so a fixture fleet gives the same findings every time.
 */
import type { BehaviourEvent, DeviceState, ScoreFactor } from '../protocol/index.js';
import type { PolicyRule } from '../policy/index.js';

export interface CaCertFacts {
  subject: string;
  notBefore: number;
  notAfter: number;
  /** 'ec' | 'rsa' | … (node's asymmetricKeyType). */
  keyType: string;
  /** EC: the named curve (prime256v1, secp384r1); RSA: undefined. */
  curve?: string;
  /** RSA: modulus bits. */
  bits?: number;
  fingerprint: string;
}

export interface AuditCertificate {
  serial: string;
  status: 'active' | 'superseded' | 'revoked';
  notBefore: number;
  notAfter: number;
}

export interface VulnFinding {
  cve: string;
  severity: string;
  source: string;
  installed: string;
  fixed: string;
}

export interface AuditDevice {
  id: string;
  state: DeviceState;
  tpm: boolean;
  createdAt: string;
  /** Device certificates, newest issue first. */
  certificates: AuditCertificate[];
  /** The latest score message (from the broker in the gateway, from the score store on the CLI). */
  score?: { score: number; time: string; factors: ScoreFactor[] };
  /** The CVE findings scoring matched with that score (undefined: none stored). */
  vulnerabilities?: VulnFinding[];
  /** When the broker last accepted a state report (gateway only; the CLI uses the score's time). */
  lastReport?: number;
}

export interface LiveFacts {
  /** When the broker's observations start (the gateway's start): events older than that are not known. */
  since: number;
  sessions: Map<string, Array<{ clientId: string; since: number; remoteAddress: string | null }>>;
  /** Recent behaviour events per device (the insights ring: the newest 20 that are not counters). */
  events: Map<string, BehaviourEvent[]>;
  /** The InfluxDB writer's counters, when scoring runs here with InfluxDB. */
  influx?: { failures: number; spooledBatches: number; dropped: number; written: number };
}

export interface AuditFacts {
  now: number;
  source: 'gateway' | 'cli';
  ca: {
    root: CaCertFacts;
    intermediate: CaCertFacts;
    /** The root's private key is a file in the data folder, beside the issuing key. */
    rootKeyOnline: boolean;
    /** Per key file present: encrypted at rest or not. */
    keys: Array<{ name: 'root' | 'intermediate'; encrypted: boolean }>;
  };
  devices: AuditDevice[];
  /** Outstanding tokens: not used and not expired (the hash is never part of the facts). */
  tokens: Array<{ deviceId: string; expiresAt: number }>;
  /** The audit log's sequence numbers and times, in order. */
  auditLog: Array<{ seq: number; time: string; action: string }>;
  config: {
    policies: PolicyRule[];
    initialScore: number;
    claim: boolean;
    /** The plain-HTTP metrics listener (false: none). */
    metrics: { port: number | false; bind: string };
    influx: boolean;
    /** A record of each API route's access rule (every one asks for a role when this holds no `public`). */
    apiRoutes: Array<{ method: string; path: string; role: string | null }>;
  };
  vuln: { feeds: Array<{ name: string; loadedAt: string; entries: number }> } | null;
  /** InfluxDB spool files left in the data folder (failed writes waiting), as the CLI sees them. */
  influxSpool?: { batches: number; oldest?: number };
  live?: LiveFacts;
}
