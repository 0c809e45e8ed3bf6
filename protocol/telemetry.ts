/**
 * Agent telemetry on wott/v1/telemetry/{device}: what a device reports about its own state. Versioned (`schema`),
 * size-bounded (MAX_MESSAGE_BYTES, plus caps on every list), and replay-evident: `reportId` increases with every
 * report from a device and `time` is when it was collected. The package list is sent in full when it changed and
 * as its hash otherwise.
 */
import { z } from 'zod';
import { deviceIdSchema } from './messages.js';

export const TELEMETRY_SCHEMA_VERSION = 1;

const shortText = z.string().max(256);

/** The most source addresses one report lists (the busiest ones). */
export const MAX_INTRUSION_SOURCES = 64;

export const listeningSocketSchema = z.object({
  protocol: z.enum(['tcp', 'tcp6', 'udp', 'udp6']),
  address: z.string().max(64),
  port: z.number().int().min(0).max(65535),
  /** Owning process name, when /proc lets the agent see it. */
  process: z.string().max(64).optional(),
});

export const packageSchema = z.object({
  name: z.string().max(128),
  /** Debian source package (CVE data is keyed by source). */
  source: z.string().max(128),
  version: z.string().max(128),
  /** The source package's version when it differs from the binary's (binNMU "+b1", renamed binaries). */
  sourceVersion: z.string().max(128).optional(),
});

/**
 * One source address that tried to get into this device during the report's window: failed logins (SSH, telnet,
 * console/PAM `login`) and inbound connections the firewall dropped. Addresses and counts only: the usernames and
 * passwords tried are never collected or sent.
 */
export const intrusionSourceSchema = z.object({
  address: z.union([z.ipv4(), z.ipv6()]),
  failedLogins: z.number().int().nonnegative().max(1_000_000_000),
  dropped: z.number().int().nonnegative().max(1_000_000_000),
  /** `tls`: a device-to-device TLS peer whose certificate did not verify (its claimed name proves nothing, its address does). */
  services: z.array(z.enum(['ssh', 'telnet', 'login', 'tls', 'other'])).max(5),
});

/** Lateral-movement evidence for one interval (the time since the agent's previous report, at most a day). */
export const intrusionsSchema = z.object({
  windowSeconds: z.number().int().positive().max(86_400),
  /** The busiest sources first; capped so one noisy network cannot bloat a report. */
  sources: z.array(intrusionSourceSchema).max(MAX_INTRUSION_SOURCES),
});

export const telemetrySchema = z.object({
  schema: z.literal(TELEMETRY_SCHEMA_VERSION),
  device: deviceIdSchema,
  reportId: z.number().int().nonnegative(),
  time: z.string().datetime(),
  agentVersion: shortText,
  os: z.object({ id: shortText, versionId: shortText.optional(), versionCodename: shortText.optional(), prettyName: shortText.optional() }),
  kernel: shortText.optional(),
  uptimeSeconds: z.number().nonnegative().optional(),
  listening: z.array(listeningSocketSchema).max(1024),
  firewall: z.object({
    tool: z.enum(['nftables', 'iptables', 'none']),
    rules: z.number().int().nonnegative(),
    defaultInputPolicy: z.enum(['accept', 'drop', 'unknown']),
  }),
  ssh: z.object({
    installed: z.boolean(),
    /** Effective sshd settings (lowercased keywords -> values) for the commonly audited ones. */
    settings: z.record(z.string().max(64), z.string().max(256)),
  }),
  /** Accounts whose password is a well-known default (the password itself is never sent). */
  defaultCredentials: z.array(z.object({ user: z.string().max(64), scheme: z.string().max(32) })).max(64),
  failedLoginsLastHour: z.number().int().nonnegative().optional(),
  /** Who tried to get in since the previous report (absent from agents that predate it or cannot read the logs). */
  intrusions: intrusionsSchema.optional(),
  packages: z.object({
    count: z.number().int().nonnegative(),
    /** SHA-256 over the sorted name/source/version lines. */
    hash: z.string().regex(/^[0-9a-f]{64}$/),
    list: z.array(packageSchema).max(20_000).optional(),
  }),
  autoUpdates: z.boolean(),
  mac: z.object({
    apparmor: z.enum(['enabled', 'disabled', 'absent']),
    selinux: z.enum(['enforcing', 'permissive', 'disabled', 'absent']),
  }),
  cpuVulnerabilities: z.array(z.object({ name: z.string().max(64), status: z.string().max(256), vulnerable: z.boolean() })).max(64),
  rebootRequired: z.boolean(),
  insecureServices: z.array(z.string().max(64)).max(64),
  keyStore: z.enum(['file', 'tpm']),
});

export type Telemetry = z.infer<typeof telemetrySchema>;
export type ListeningSocket = z.infer<typeof listeningSocketSchema>;
export type PackageEntry = z.infer<typeof packageSchema>;
export type IntrusionSource = z.infer<typeof intrusionSourceSchema>;
export type Intrusions = z.infer<typeof intrusionsSchema>;

/** Reported in every telemetry message. */
export const AGENT_VERSION = '0.1.0';
