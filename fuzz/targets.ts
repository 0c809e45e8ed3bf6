/**
 * Fuzz targets for the parsers of outside data. Each target names an input arbitrary (JSON-serialisable, so a
 * failing input can be kept in the corpus) and a check that throws when a property breaks: the parser accepts
 * valid input or refuses with its own clear error, never lets another exception escape, and a refusal changes
 * nothing it guards.
 */
import { createPrivateKey, sign, webcrypto, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import 'reflect-metadata'; // before @peculiar/x509 (tsyringe needs it)
import * as x509 from '@peculiar/x509';
import fc from 'fast-check';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { collectState, countFailedLogins, IntrusionTally, MAX_TRACKED_SOURCES, realCrypt, tallyAuthLog, tallyKernelLog } from '../agent/collectors/index.js';
import { isDeepStrictEqual } from 'node:util';
import { decodeBusInterest, decodeBusMessage, encodeBusInterest, encodeBusMessage, type BusPacket } from '../broker/index.js';
import { CaError, checkCsr, decodeBase64Body, parseCsr } from '../ca/index.js';
import { bitString, children, oid, readTlv, sequence } from '../ca/der.js';
import { brokerLimitsFromConfig, ConfigError, httpsLimitsFromConfig, parseConfig, streamLimitsFromConfig } from '../cli/config.js';
import { PolicyEngine } from '../policy/index.js';
import {
  intrusionSourceSchema,
  MAX_INTRUSION_SOURCES,
  parseMessage,
  scoreMessageSchema,
  TELEMETRY_SCHEMA_VERSION,
  telemetrySchema,
  type Telemetry,
} from '../protocol/index.js';
import { loadModel, ScoreEngine, type ScoreModel } from '../scoring/index.js';
import { CveFeedError, parseFeed } from '../vuln/feed.js';
import { mutatedDer } from './der.js';
import { hostileValue, jsonPayload, mutatedJson, mutatedText } from './mutate.js';

export interface FuzzTarget<I = unknown> {
  name: string;
  /** What is fuzzed and which properties are checked (printed by `npm run fuzz -- list`). */
  description: string;
  /** Builds seeds (may be slow or async; runs once per process). */
  prepare?: () => Promise<void> | void;
  input: () => fc.Arbitrary<I>;
  /** Releases what prepare() started (servers, sockets). */
  close?: () => Promise<void> | void;
  /** Figures of the last run worth printing (after close()): the MQTT target's heap and connections. */
  report?: () => Record<string, number | string>;
  /** Throws (a PropertyFailure or the escaped exception) when a property breaks. */
  check: (input: I) => void | Promise<void>;
}

/** A broken property, as opposed to an exception escaping the code under test. */
export class PropertyFailure extends Error {
  override name = 'PropertyFailure';
}

function expect(condition: unknown, message: string): asserts condition {
  if (!condition) throw new PropertyFailure(message);
}

/** An exception escaped the parser's contract: rethrown with what was expected, keeping the original. */
function escaped(err: unknown, contract: string): never {
  const e = new PropertyFailure(`${contract}; got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  (e as { cause?: unknown }).cause = err;
  throw e;
}

/** The repository root (this file runs as fuzz/targets.ts under tap and as dist/fuzz/targets.js). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('repository root not found');
    dir = up;
  }
  return dir;
}

// ---------------------------------------------------------------------------------------------------------------
// Scoring ingest: telemetry, behaviour events, peer reports

const T0 = Date.parse('2026-11-24T10:00:00Z');
let model: ScoreModel | undefined;
let telemetrySeeds: Telemetry[] = [];

function fixtureTelemetry(): Telemetry[] {
  if (telemetrySeeds.length) return telemetrySeeds;
  const roots = join(repoRoot(), 'test/fixtures/roots');
  const now = new Date('2024-11-24T10:30:00Z');
  const seeds: Telemetry[] = [];
  for (const root of ['debian12-hardened', 'rpi-factory']) {
    const state = collectState(resolve(roots, root), { crypt: realCrypt, now });
    const full = { schema: TELEMETRY_SCHEMA_VERSION, agentVersion: '0.1.0', keyStore: 'file', ...state, device: 'dev-a', reportId: 2, time: new Date(T0).toISOString() };
    const parsed = telemetrySchema.parse(full); // a seed the schema refuses would only test refusals
    seeds.push(parsed);
    // A slim copy: mutations then land on the fields rather than mostly on package entries.
    seeds.push({ ...parsed, packages: { ...parsed.packages, list: parsed.packages.list?.slice(0, 3) } });
  }
  telemetrySeeds = seeds;
  return seeds;
}

/** An engine that knows dev-a (with accepted telemetry) and dev-b, on a fixed clock. */
function engineWithDevices(): ScoreEngine {
  model ??= loadModel();
  const known = new Set(['dev-a', 'dev-b']);
  const e = new ScoreEngine({ model, now: () => T0, caFacts: (d) => (known.has(d) ? { state: 'active' } : undefined) });
  const base = { ...fixtureTelemetry()[1]!, reportId: 1, time: new Date(T0 - 60_000).toISOString() };
  const r = e.ingestTelemetry('dev-a', JSON.stringify(base));
  if (!r.accepted) throw new Error(`fuzz setup: baseline telemetry refused: ${r.reason}`);
  return e;
}

/** What the engine would publish about each device: must not move when an input is refused. */
function scores(e: ScoreEngine): string {
  return JSON.stringify(['dev-a', 'dev-b'].map((d) => e.compute(d).message));
}

function ingestCheck(run: (e: ScoreEngine) => ReturnType<ScoreEngine['ingestTelemetry']>, what: string): void {
  const e = engineWithDevices();
  const before = scores(e);
  let result: ReturnType<ScoreEngine['ingestTelemetry']>;
  try {
    result = run(e);
  } catch (err) {
    escaped(err, `${what}: expected an IngestResult, not an exception`);
  }
  expect(typeof result === 'object' && result !== null && typeof result.accepted === 'boolean', `${what}: result is not an IngestResult`);
  if (!result.accepted) {
    expect(typeof result.reason === 'string' && result.reason.trim().length > 0, `${what}: refused without a reason`);
    expect(scores(e) === before, `${what}: refused ("${result.reason}") but the scores changed (a partial write)`);
  }
  // Accepted or not, the engine still computes sane scores.
  for (const d of ['dev-a', 'dev-b']) {
    const m = e.compute(d).message;
    expect(Number.isFinite(m.score) && m.score >= 0 && m.score <= 1, `${what}: score of ${d} is ${m.score} after ingest`);
    expect(scoreMessageSchema.safeParse(m).success, `${what}: score message of ${d} no longer matches its schema`);
  }
}

const telemetry: FuzzTarget<string> = {
  name: 'telemetry',
  description: 'agent telemetry (telemetrySchema) through ScoreEngine.ingestTelemetry: accepted or refused with a reason; a refusal moves no score',
  prepare: () => void fixtureTelemetry(),
  input: () => jsonPayload(fixtureTelemetry()),
  check: (payload) =>
    ingestCheck((e) => {
      const r = e.ingestTelemetry('dev-a', payload);
      if (r.accepted) {
        // Accepted means valid: the ingest path must not be laxer than the schema.
        let json: unknown;
        try {
          json = JSON.parse(payload);
        } catch {
          throw new PropertyFailure('telemetry: accepted a payload that is not JSON');
        }
        expect(telemetrySchema.safeParse(json).success, 'telemetry: accepted a payload the schema refuses');
      }
      return r;
    }, 'telemetry'),
};

const EVENT_SEEDS = [
  { device: 'dev-a', type: 'connect', time: new Date(T0).toISOString(), verified: true, remoteAddress: '192.0.2.7' },
  { device: 'dev-a', type: 'publish_denied', time: new Date(T0).toISOString(), verified: true, topic: 'payments/x', reason: 'score 0.2 below 0.8' },
  {
    device: 'dev-a',
    type: 'counters',
    time: new Date(T0).toISOString(),
    verified: true,
    node: 'node-1',
    counters: { intervalMs: 10_000, messagesIn: 5, bytesIn: 50, messagesOut: 1, bytesOut: 10, publishDenied: 0, subscribeDenied: 0, suppressedEvents: 0 },
  },
];

const behaviourEvent: FuzzTarget<string> = {
  name: 'behaviour-event',
  description: 'broker behaviour events (behaviourEventSchema) through ScoreEngine.ingestEvent: accepted or refused with a reason; a refusal moves no score',
  input: () => jsonPayload(EVENT_SEEDS),
  check: (payload) => ingestCheck((e) => e.ingestEvent('dev-a', payload), 'behaviour-event'),
};

const REPORT_SEEDS = [
  { reporter: 'dev-b', subject: 'dev-a', reportId: 5, time: new Date(T0).toISOString(), rating: 0.2, reason: 'scanned ports 1-1024' },
  { reporter: 'dev-b', subject: 'dev-a', reportId: 6, time: new Date(T0 - 1000).toISOString(), rating: 1, reason: 'ok' },
];

const peerReport: FuzzTarget<{ subject: string; payload: string }> = {
  name: 'peer-report',
  description: 'peer reports (peerReportSchema) through ScoreEngine.ingestReport, on its own and on hostile topic subjects: a refusal moves no score',
  input: () =>
    fc.record({
      subject: fc.oneof({ weight: 4, arbitrary: fc.constant('dev-a') }, { weight: 1, arbitrary: fc.constantFrom('dev-b', 'dev-z', '', '+', '#', '../dev-a', 'DEV-A') }),
      payload: jsonPayload(REPORT_SEEDS),
    }),
  check: ({ subject, payload }) => ingestCheck((e) => e.ingestReport('dev-b', subject, payload), 'peer-report'),
};

// ---------------------------------------------------------------------------------------------------------------
// Score messages (what trust clients and the dashboard read)

let scoreSeeds: unknown[] = [];
const scoreMessage: FuzzTarget<string> = {
  name: 'score-message',
  description: 'score messages (scoreMessageSchema) through parseMessage: a value that matches the schema or an Error with a message',
  prepare: () => {
    if (!scoreSeeds.length) scoreSeeds = [engineWithDevices().compute('dev-a').message, engineWithDevices().compute('dev-b').message];
  },
  input: () => jsonPayload(scoreSeeds),
  check: (payload) => {
    let value: unknown;
    try {
      value = parseMessage(scoreMessageSchema, payload);
    } catch (err) {
      if (err instanceof Error && /^(message is not valid JSON|invalid message: |message too large)/.test(err.message)) return;
      escaped(err, 'score-message: expected a value or a clear Error');
    }
    expect(scoreMessageSchema.safeParse(value).success, 'score-message: returned a value that does not match the schema');
  },
};

// ---------------------------------------------------------------------------------------------------------------
// Config files and policies

let configSeeds: string[] = [];
const POLICY_YAML = `policies:
  - topic: "payments/#"
    publish: 0.8
    subscribe: 0.9
  - topic: "devices/{device}/telemetry"
    publish: 0.3
  - topic: "fleet/+/status"
    subscribe: 0.5
`;

function loadConfigSeeds(): string[] {
  if (!configSeeds.length) configSeeds = [readFileSync(join(repoRoot(), 'wott.example.yaml'), 'utf8'), POLICY_YAML];
  return configSeeds;
}

/** A config text: mutated as YAML structure (parsed, bent, written back) or as characters. */
function configText(): fc.Arbitrary<string> {
  const seed = fc.constantFrom(...loadConfigSeeds());
  return fc.oneof(
    { weight: 4, arbitrary: seed.chain((s) => mutatedJson(parseYaml(s) ?? {})).map((v) => stringifyYaml(v)) },
    { weight: 3, arbitrary: seed.chain((s) => mutatedText(s)) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
  );
}

function checkConfig(text: string, what: string): ReturnType<typeof parseConfig> | undefined {
  let config: ReturnType<typeof parseConfig>;
  try {
    config = parseConfig(text);
  } catch (err) {
    if (err instanceof ConfigError && /^wott\.yaml:\d+: \S/.test(err.message) && !err.message.includes('\n')) return undefined;
    escaped(err, `${what}: expected a config or one ConfigError line "wott.yaml:LINE: ..."`);
  }
  try {
    brokerLimitsFromConfig(config);
    streamLimitsFromConfig(config);
    httpsLimitsFromConfig(config);
    new PolicyEngine(config.policies);
  } catch (err) {
    escaped(err, `${what}: an accepted config must be usable`);
  }
  return config;
}

const config: FuzzTarget<string> = {
  name: 'config',
  description: 'wott.yaml text through parseConfig: a config every consumer can use, or one ConfigError naming the line',
  prepare: () => void loadConfigSeeds(),
  input: configText,
  check: (text) => void checkConfig(text, 'config'),
};

const policy: FuzzTarget<{ policies: string; topic: string; device: string; score: number }> = {
  name: 'policy',
  description: 'policy rules through parseConfig and PolicyEngine, then decisions on generated topics and filters: never a throw, allows() agrees with decide()',
  input: () =>
    fc.record({
      policies: fc.oneof(
        mutatedJson(parseYaml(POLICY_YAML)).map((v) => stringifyYaml(v)),
        mutatedText(POLICY_YAML),
      ),
      topic: fc.oneof(
        fc.constantFrom('payments/x', 'devices/dev-a/telemetry', 'fleet/a/status', 'payments/#', '+/+', '#', '', '/', '//', 'a/{device}/b', '$SYS/x'),
        fc.array(fc.oneof(fc.constantFrom('+', '#', '{device}', 'dev-a', 'payments', ''), fc.string({ maxLength: 6 })), { maxLength: 6 }).map((l) => l.join('/')),
      ),
      device: fc.constantFrom('dev-a', 'dev-b', ''),
      score: fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), hostileValue.filter((v): v is number => typeof v === 'number')),
    }),
  check: ({ policies, topic, device, score }) => {
    const cfg = checkConfig(policies, 'policy');
    if (!cfg) return;
    const engine = new PolicyEngine(cfg.policies);
    const who = device || undefined;
    try {
      for (const action of ['publish', 'subscribe'] as const) {
        const d = engine.decide(topic, action, who, score);
        expect(typeof d.allowed === 'boolean' && typeof d.reason === 'string' && d.reason.length > 0, 'policy: a decision without a reason');
        expect(engine.allows(topic, action, who, score) === d.allowed, `policy: allows() and decide() disagree on ${action} ${JSON.stringify(topic)}`);
      }
      const s = engine.decideSubscribe(topic, who, score);
      expect(typeof s.allowed === 'boolean', 'policy: decideSubscribe gave no answer');
    } catch (err) {
      if (err instanceof PropertyFailure) throw err;
      escaped(err, 'policy: decisions must not throw');
    }
  },
};

// ---------------------------------------------------------------------------------------------------------------
// CVE feeds

let feedSeeds: { tracker: unknown; osv: unknown[]; jsonl: string } | undefined;
function loadFeedSeeds() {
  if (!feedSeeds) {
    const dir = join(repoRoot(), 'examples/cve');
    const jsonl = readFileSync(join(dir, 'osv-sample.jsonl'), 'utf8');
    feedSeeds = { tracker: JSON.parse(readFileSync(join(dir, 'tracker-sample.json'), 'utf8')), osv: jsonl.split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown), jsonl };
  }
  return feedSeeds;
}

const cveFeed: FuzzTarget<string> = {
  name: 'cve-feed',
  description: 'CVE feeds (Debian tracker JSON, OSV JSON/JSON Lines) through parseFeed: entries, or one CveFeedError naming the feed',
  prepare: () => void loadFeedSeeds(),
  input: () => {
    const s = loadFeedSeeds();
    return fc.oneof(jsonPayload([s.tracker, s.osv, ...s.osv]), mutatedText(s.jsonl), fc.array(fc.constantFrom(...s.osv).chain((r) => mutatedJson(r)), { minLength: 2, maxLength: 4 }).map((rs) => rs.map((r) => JSON.stringify(r)).join('\n')));
  },
  check: (text) => {
    let feed: ReturnType<typeof parseFeed>;
    try {
      feed = parseFeed(text, 'feed');
    } catch (err) {
      if (err instanceof CveFeedError && err.message.startsWith('feed')) return;
      escaped(err, 'cve-feed: expected entries or a CveFeedError');
    }
    expect(feed.entries.length > 0, 'cve-feed: accepted a feed without entries');
    for (const e of feed.entries) {
      expect(typeof e.id === 'string' && e.id.length > 0 && typeof e.source === 'string' && e.source.length > 0 && typeof e.release === 'string', `cve-feed: entry without id/source/release: ${JSON.stringify(e).slice(0, 200)}`);
      expect(e.fixed === null || typeof e.fixed === 'string', 'cve-feed: fixed is neither null nor a version');
    }
  },
};

// ---------------------------------------------------------------------------------------------------------------
// EST enrolment bodies: CSRs

let csrSeed: { der: Buffer; cri: Buffer; key: KeyObject } | undefined;
const ECDSA_SHA256 = '1.2.840.10045.4.3.2';

async function makeCsrSeed() {
  if (csrSeed) return csrSeed;
  x509.cryptoProvider.set(webcrypto as unknown as Crypto);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const privateKey = createPrivateKey({ key: Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), format: 'der', type: 'pkcs8' });
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=dev-fuzz, O=wott', keys, signingAlgorithm: alg });
  const der = Buffer.from(csr.rawData);
  // The signed part (certificationRequestInfo): mutated and re-signed, so the checks behind the signature run too.
  const info = children(der, readTlv(der))[0]!;
  csrSeed = { der, cri: Buffer.from(der.subarray(info.start, info.end)), key: privateKey };
  parseCsr(der); // the seed itself must pass
  return csrSeed;
}

function signedCsr(cri: Buffer, key: KeyObject): Buffer {
  const signature = sign('sha256', cri, { key, dsaEncoding: 'der' });
  return sequence(cri, sequence(oid(ECDSA_SHA256)), bitString(signature));
}

const csr: FuzzTarget<string> = {
  name: 'csr',
  description:
    'EST simpleenroll bodies (base64 PKCS#10) through decodeBase64Body and parseCsr, DER structure-aware (whole CSR, or the signed part re-signed): a checked CSR or a CaError 4xx; checkCsr (the CA\'s threadpool variant) gives the same answer',
  prepare: async () => void (await makeCsrSeed()),
  input: () => {
    const seed = csrSeed;
    if (!seed) throw new Error('csr: prepare() first');
    const b64 = (d: Buffer) => d.toString('base64').replace(/.{64}/g, '$&\n');
    return fc.oneof(
      { weight: 3, arbitrary: mutatedDer(seed.der).map(b64) },
      { weight: 3, arbitrary: mutatedDer(seed.cri).map((cri) => b64(signedCsr(cri, seed.key))) },
      { weight: 1, arbitrary: mutatedText(b64(seed.der)) },
    );
  },
  check: async (body) => {
    // What the CA runs (checkCsr) must answer exactly as parseCsr does: the same CSR accepted, the same refusal.
    const outcome = async (parse: () => Promise<{ commonName: string; spki: Buffer }>) => {
      try {
        const { commonName, spki } = await parse();
        return `ok ${commonName} ${spki.toString('hex')}`;
      } catch (err) {
        return err instanceof CaError ? `${err.status} ${err.message}` : `escaped ${String(err)}`;
      }
    };
    const [sync, threaded] = await Promise.all([
      outcome(async () => parseCsr(decodeBase64Body(body))),
      outcome(async () => checkCsr(decodeBase64Body(body))),
    ]);
    expect(sync === threaded, `csr: parseCsr and checkCsr disagree: ${sync.slice(0, 200)} / ${threaded.slice(0, 200)}`);
    try {
      const checked = parseCsr(decodeBase64Body(body));
      expect(typeof checked.commonName === 'string' && checked.publicKey.asymmetricKeyDetails?.namedCurve === 'prime256v1', 'csr: accepted a CSR without one CN and a P-256 key');
    } catch (err) {
      if (err instanceof PropertyFailure) throw err;
      if (err instanceof CaError && err.status >= 400 && err.status < 500 && err.message.length > 0 && !err.message.includes('\n')) return;
      escaped(err, 'csr: expected a checked CSR or a CaError 4xx with a one-line reason');
    }
  },
};

// ---------------------------------------------------------------------------------------------------------------
// Agent log collectors (auth.log, kern.log read off the device: written by anyone who can reach syslog)

let logSeeds: string[] = [];
const LOG_NOW = new Date('2024-11-24T10:30:00Z');
function loadLogSeeds(): string[] {
  if (!logSeeds.length) {
    const roots = join(repoRoot(), 'test/fixtures/roots');
    logSeeds = ['debian12-hardened/var/log/auth.log', 'rpi-factory/var/log/auth.log', 'lateral-target/var/log/auth.log', 'lateral-target/var/log/kern.log'].map((p) =>
      readFileSync(join(roots, p), 'utf8'),
    );
  }
  return logSeeds;
}

/** Log lines with attacker-chosen parts where sshd/login/the kernel copy them in (user names, addresses). */
const hostileLine = fc
  .record({
    prefix: fc.constantFrom('Nov 24 10:29:59 host ', '2024-11-24T10:29:59.123456+00:00 host ', 'Nov 24 10:29:59 host kernel: ', ''),
    body: fc.constantFrom(
      'sshd[1]: Failed password for invalid user U from A port 22 ssh2',
      'sshd[2]: Invalid user U from A port 22',
      'login[3]: pam_unix(login:auth): authentication failure; logname= uid=0 euid=0 tty=/dev/pts/0 ruser= rhost=A  user=U',
      'login[3]: FAILED LOGIN (1) on \'/dev/pts/0\' FROM \'A\' FOR \'U\', Authentication failure',
      '[UFW BLOCK] IN=eth0 OUT= MAC= SRC=A DST=192.0.2.1 LEN=60 PROTO=TCP SPT=1 DPT=22',
      'nft drop: IN=eth0 SRC=A DST=192.0.2.1 PROTO=TCP DPT=23',
    ),
    user: fc.oneof(fc.constantFrom('root', 'from 10.0.0.9', 'x from 1.2.3.4 port 1', ''), fc.string({ maxLength: 20 })),
    address: fc.oneof(
      fc.ipV4(),
      fc.ipV6(),
      fc.constantFrom('::ffff:10.0.0.1', 'fe80::1%eth0', '0.0.0.0', '::', '999.1.1.1', '1.2.3', 'host.example', '[::1]', '01.02.03.04'),
      fc.string({ maxLength: 20 }),
    ),
  })
  .map(({ prefix, body, user, address }) => prefix + body.replace('U', user).replace('A', address));

const authLog: FuzzTarget<string> = {
  name: 'auth-log',
  description: 'auth.log/kern.log text through countFailedLogins, tallyAuthLog and tallyKernelLog: counts, and sources that fit the telemetry schema, never a throw',
  prepare: () => void loadLogSeeds(),
  input: () => {
    const seeds = loadLogSeeds();
    const seed = fc.constantFrom(...seeds);
    return fc.oneof(
      seed.chain((s) => mutatedText(s)),
      fc.tuple(seed, fc.array(hostileLine, { minLength: 1, maxLength: 30 }), fc.nat()).map(([s, lines, at]) => {
        const existing = s.split('\n');
        existing.splice(at % (existing.length + 1), 0, ...lines);
        return existing.join('\n');
      }),
    );
  },
  check: (text) => {
    const window = { start: LOG_NOW.getTime() - 7 * 86_400_000, end: LOG_NOW.getTime() };
    let failed: number;
    let tally: IntrusionTally;
    try {
      failed = countFailedLogins(text, LOG_NOW);
      tally = tallyKernelLog(text, LOG_NOW, window, tallyAuthLog(text, LOG_NOW, window));
    } catch (err) {
      escaped(err, 'auth-log: collectors must not throw on any log text');
    }
    expect(Number.isSafeInteger(failed) && failed >= 0, `auth-log: failed logins ${failed}`);
    expect(tally.size <= MAX_TRACKED_SOURCES, `auth-log: ${tally.size} sources tracked (limit ${MAX_TRACKED_SOURCES})`);
    const top = tally.top();
    expect(top.length <= MAX_INTRUSION_SOURCES, 'auth-log: more sources than a report may carry');
    for (const source of top) {
      const r = intrusionSourceSchema.safeParse(source);
      expect(r.success, `auth-log: source ${JSON.stringify(source)} would make the agent's telemetry invalid: ${r.error?.issues[0]?.message}`);
    }
  },
};

// ---------------------------------------------------------------------------------------------------------------
// The cluster bus' pub/sub messages (what a node reads from Redis)

const busPacket: fc.Arbitrary<BusPacket> = fc.record(
  {
    topic: fc.string({ unit: 'grapheme', maxLength: 40 }),
    payload: fc.oneof(fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)), fc.string({ unit: 'grapheme', maxLength: 20 })),
    cmd: fc.oneof(fc.constantFrom('publish', 'pubrel'), hostileValue),
    qos: fc.oneof(fc.constantFrom(0, 1, 2), hostileValue),
    retain: fc.oneof(fc.boolean(), hostileValue),
    dup: fc.boolean(),
    messageId: fc.oneof(fc.integer({ min: 0, max: 0xffff }), hostileValue),
    brokerId: fc.oneof(fc.string({ unit: 'grapheme', maxLength: 20 }), hostileValue),
    brokerCounter: fc.oneof(fc.integer(), fc.double()),
    properties: fc.record({ correlationData: fc.uint8Array({ maxLength: 8 }).map((a) => Buffer.from(a)), userProperties: fc.dictionary(fc.string(), fc.string()) }),
    clientId: fc.string(),
  },
  { requiredKeys: ['topic', 'payload'] },
);

type BusInput = { packets: BusPacket[]; filters: string[]; seq: number; edits: Array<{ at: number; op: 'flip' | 'cut' | 'insert'; byte: number }> };

function bend(message: Buffer, edits: BusInput['edits']): Buffer {
  let bytes = [...message];
  for (const e of edits) {
    const at = e.at % (bytes.length + 1);
    if (e.op === 'flip' && at < bytes.length) bytes[at] = e.byte;
    else if (e.op === 'cut') bytes = bytes.slice(0, at);
    else bytes.splice(at, 0, e.byte);
  }
  return Buffer.from(bytes);
}

const busMessage: FuzzTarget<BusInput> = {
  name: 'bus-message',
  description:
    "the cluster bus' pub/sub messages (broker/bus-entry.ts) and interest announcements (broker/bus-interest.ts): generated packets and filters come back equal (topic, payload and the fields the layout carries exactly; a second round trip changes nothing); bytes flipped, cut or inserted give an Error or packets with a string topic, filters that are strings, never a throw",
  input: () =>
    fc.record({
      packets: fc.array(busPacket, { minLength: 1, maxLength: 4 }),
      filters: fc.array(fc.string({ unit: 'grapheme', maxLength: 30 }), { maxLength: 5 }),
      seq: fc.nat(),
      edits: fc.array(fc.record({ at: fc.nat(), op: fc.constantFrom('flip' as const, 'cut' as const, 'insert' as const), byte: fc.integer({ min: 0, max: 255 }) }), { maxLength: 4 }),
    }),
  check: ({ packets, filters, seq, edits }) => {
    let message: Buffer;
    try {
      message = encodeBusMessage('fuzz-node', packets);
    } catch (err) {
      escaped(err, 'bus-message: encoding any packet Aedes could hand over must not throw');
    }
    const back = decodeBusMessage(message);
    expect(!(back instanceof Error), `bus-message: its own message refused: ${(back as Error).message}`);
    expect(back.instance === 'fuzz-node' && back.packets.length === packets.length, 'bus-message: instance or packet count changed');
    back.packets.forEach((got, i) => {
      const sent = packets[i]!;
      expect(got.topic === sent.topic, 'bus-message: topic changed');
      expect(typeof sent.payload === 'string' ? got.payload === sent.payload : Buffer.compare(got.payload as Buffer, sent.payload as Buffer) === 0, 'bus-message: payload changed');
      for (const key of ['cmd', 'qos', 'retain', 'dup', 'messageId', 'brokerCounter'] as const) {
        const value = sent[key];
        const exact = typeof value === 'boolean' || typeof value === 'number' || value === 'publish';
        if (exact) expect(Object.is(got[key], value) || (key !== 'brokerCounter' && JSON.stringify(got[key]) === JSON.stringify(value)), `bus-message: ${key} ${String(value)} came back ${String(got[key])}`);
      }
      expect(Object.getPrototypeOf(got) === Object.prototype, 'bus-message: a packet with another prototype');
    });
    const again = decodeBusMessage(encodeBusMessage('fuzz-node', back.packets));
    expect(isDeepStrictEqual(again, back), 'bus-message: a second round trip changed the packets');
    let decoded: ReturnType<typeof decodeBusMessage>;
    try {
      decoded = decodeBusMessage(bend(message, edits));
    } catch (err) {
      escaped(err, 'bus-message: a bent message must give an Error, not a throw');
    }
    if (!(decoded instanceof Error)) for (const p of decoded.packets) expect(typeof p.topic === 'string' && Object.getPrototypeOf(p) === Object.prototype, 'bus-message: a bent message gave a packet without a string topic');
    // Interest announcements (bus-interest.ts) share the channels: the same two properties.
    const op = (['add', 'remove', 'state', 'ack'] as const)[seq % 4]!;
    const announcement = encodeBusInterest('fuzz-node', op, filters, seq);
    expect(isDeepStrictEqual(decodeBusInterest(announcement), { instance: 'fuzz-node', op, seq, filters }), 'bus-message: an announcement changed on its way');
    let heard: ReturnType<typeof decodeBusInterest>;
    try {
      heard = decodeBusInterest(bend(announcement, edits));
    } catch (err) {
      escaped(err, 'bus-message: a bent announcement must give an Error, not a throw');
    }
    if (!(heard instanceof Error)) expect(Array.isArray(heard.filters) && heard.filters.every((f) => typeof f === 'string'), 'bus-message: a bent announcement gave filters that are not strings');
  },
};

export const PARSER_TARGETS: ReadonlyMap<string, FuzzTarget<any>> = new Map(
  [telemetry, behaviourEvent, peerReport, scoreMessage, config, policy, cveFeed, csr, authLog, busMessage].map((t) => [t.name, t as FuzzTarget<any>]),
);
