import t from 'tap';
import { parseConfig, loadConfig, ConfigError } from '../cli/config.js';
import { tempDir, writeTemp } from './helpers.js';

t.test('defaults with no file or an empty one', async (t) => {
  const config = parseConfig('');
  t.equal(config.ca.certLifetime, 7 * 86_400_000);
  t.equal(config.enrollment.claim, false);
  t.equal(config.gateway.httpsPort, 8443);
  t.equal(config.gateway.mqttPort, 8883);
  t.same(config.gateway.hosts, []);
});

t.test('durations and fields are parsed', async (t) => {
  t.equal(parseConfig('').ca.ocspValidity, 3_600_000, 'OCSP answers are valid an hour by default');
  const config = parseConfig('ca:\n  certLifetime: 3d\n  crlValidity: 12h\n  ocspValidity: 10m\nenrollment:\n  claim: true\n  tokenTtl: 90\ngateway:\n  hosts: [gw.example, 10.0.0.2]\n  publicUrl: https://gw.example:8443\n');
  t.equal(config.ca.certLifetime, 3 * 86_400_000);
  t.equal(config.ca.crlValidity, 12 * 3_600_000);
  t.equal(config.ca.ocspValidity, 600_000);
  t.equal(config.enrollment.tokenTtl, 90_000, 'bare numbers are seconds');
  t.equal(config.enrollment.claim, true);
  t.same(config.gateway.hosts, ['gw.example', '10.0.0.2']);
});

t.test('enrollment limits: documented defaults, parsed values, strict fields', async (t) => {
  const defaults = parseConfig('').enrollment;
  t.same(defaults.rateLimit, { perMinute: 6, burst: 20, maxSources: 10_000 });
  t.equal(defaults.maxUnclaimed, 1000);
  t.equal(defaults.unclaimedTtl, 3 * 86_400_000);
  const config = parseConfig('enrollment:\n  claim: true\n  rateLimit:\n    perMinute: 0.5\n    burst: 3\n  maxUnclaimed: 0\n  unclaimedTtl: 2h\n');
  t.same(config.enrollment.rateLimit, { perMinute: 0.5, burst: 3, maxSources: 10_000 });
  t.equal(config.enrollment.maxUnclaimed, 0, '0 turns claim-mode enrollment off without turning claim mode off');
  t.equal(config.enrollment.unclaimedTtl, 7_200_000);
  const cases: Array<[string, RegExp]> = [
    ['enrollment:\n  rateLimit:\n    perMinute: 0\n', /wott\.yaml:3: enrollment\.rateLimit\.perMinute:/],
    ['enrollment:\n  rateLimit:\n    burst: 0.5\n', /wott\.yaml:3: enrollment\.rateLimit\.burst:/],
    ['enrollment:\n  rateLimit:\n    perMinut: 5\n', /wott\.yaml:3: enrollment\.rateLimit\.perMinut: unknown field/],
    ['enrollment:\n  maxUnclaimed: -1\n', /wott\.yaml:2: enrollment\.maxUnclaimed:/],
    ['enrollment:\n  unclaimedTtl: never\n', /wott\.yaml:2: enrollment\.unclaimedTtl: not a positive duration/],
  ];
  for (const [text, message] of cases) t.throws(() => parseConfig(text), { name: 'ConfigError', message }, JSON.stringify(text));
});

t.test('store: SQLite in the data folder unless a postgres URL is given', async (t) => {
  t.same(parseConfig('').store, {}, 'default: the embedded SQLite files');
  t.equal(parseConfig('store:\n  postgres: postgres://wott@db.example:5432/wott\n').store.postgres, 'postgres://wott@db.example:5432/wott');
  t.equal(parseConfig('store:\n  postgres: postgresql://db/wott\n').store.postgres, 'postgresql://db/wott');
  t.throws(() => parseConfig('store:\n  postgres: https://db.example/wott\n'), { name: 'ConfigError', message: 'wott.yaml:2: store.postgres: expected a postgres:// URL' });
  t.throws(() => parseConfig('store:\n  redis: redis://x\n'), { name: 'ConfigError', message: 'wott.yaml:2: store.redis: unknown field' });
});

t.test('errors name the field and the line', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['ca:\n  certLifetime: soon\n', /^wott\.yaml:2: ca\.certLifetime: not a positive duration: "soon"/],
    ['ca:\n  certLifetime: -5m\n', /wott\.yaml:2: ca\.certLifetime: not a positive duration/],
    ['enrollment:\n  claim: yes please\n', /wott\.yaml:2: enrollment\.claim: .*boolean/],
    ['gateway:\n  httpsPort: 8443\n  mqttPort: 70000\n', /wott\.yaml:3: gateway\.mqttPort:/],
    ['ca:\n  certLifetime: 7d\n  certLifetim: 3d\n', /wott\.yaml:3: ca\.certLifetim: unknown field/],
    ['enrolment:\n  claim: true\n', /wott\.yaml:1: enrolment: unknown field/],
    ['gateway:\n  publicUrl: http://insecure.example\n', /wott\.yaml:2: gateway\.publicUrl:/],
    ['gateway: [1, 2\n', /wott\.yaml:\d+: YAML syntax error/],
    ['ca: {}\nca: {}\n', /wott\.yaml:\d+: YAML syntax error: .*[Mm]ap keys must be unique/],
    ['- a list\n', /wott\.yaml:1: \(root\):/],
    ['gateway:\n  hosts: ["' + 'x'.repeat(300) + '"]\n', /wott\.yaml:2: gateway\.hosts\.0:/],
  ];
  for (const [text, message] of cases) {
    t.throws(() => parseConfig(text), { name: 'ConfigError', message }, JSON.stringify(text.slice(0, 40)));
  }
});

t.test('loadConfig reads a file, or says it cannot', async (t) => {
  const dir = tempDir(t);
  const file = writeTemp(dir, 'wott.yaml', 'enrollment:\n  claim: true\n');
  t.equal(loadConfig(file).config.enrollment.claim, true);
  t.equal(loadConfig(file).source, file);
  t.throws(() => loadConfig(`${dir}/missing.yaml`), { message: /cannot read config .*missing\.yaml: ENOENT/ });
  t.ok(new ConfigError('x') instanceof Error);
});

t.test('the cluster section: a redis URL, an optional node name, the lease and the bus bound', async (t) => {
  const config = parseConfig('cluster:\n  redis: redis://10.0.0.5:6379/1\n  node: gw-1\n  lease: 2s\n  busMaxLength: 5000\n  qos0InFlight: 2000\n');
  t.same(config.cluster, { redis: 'redis://10.0.0.5:6379/1', node: 'gw-1', lease: 2000, busMaxLength: 5000, qos0InFlight: 2000 });
  t.equal(parseConfig('cluster:\n  redis: rediss://cache:6380\n').cluster?.lease, 3000, 'lease defaults to 3 s');
  t.equal(parseConfig('cluster:\n  redis: rediss://cache:6380\n').cluster?.busMaxLength, 100_000, 'the bus keeps about 100,000 messages by default');
  t.throws(() => parseConfig('cluster:\n  redis: redis://x\n  busMaxLength: 0\n'), /busMaxLength/);
  t.equal(parseConfig('cluster:\n  redis: redis://x\n').cluster?.qos0InFlight, 10_000, 'QoS 0 publishers wait past 10,000 unanswered by default');
  t.throws(() => parseConfig('cluster:\n  redis: redis://x\n  qos0InFlight: -5\n'), /qos0InFlight/);
  t.equal(parseConfig('scoring: {}\n').cluster, undefined, 'no cluster by default');
  t.throws(() => parseConfig('cluster:\n  redis: http://10.0.0.5\n'), /cluster\.redis/);
  t.throws(() => parseConfig('cluster:\n  redis: redis://x\n  node: "../../etc"\n'), /cluster\.node/);
  t.throws(() => parseConfig('cluster:\n  redis: redis://x\n  extra: 1\n'), /cluster/);
});

t.test('the shipped wott.example.yaml is valid', async (t) => {
  const { config } = loadConfig('wott.example.yaml');
  t.equal(config.policies.length, 3);
  t.equal(config.policies[2]?.topic, 'devices/{device}/#');
  t.equal(config.broker.eventInterval, 10_000);
});

t.test('YAML aliases: one without its anchor, or an alias bomb, is a ConfigError naming the line (found by npm run fuzz -- policy)', async (t) => {
  t.throws(() => parseConfig('policies:\n  - topic: a/#\n    publish: *x\n'), { name: 'ConfigError', message: 'wott.yaml:3: YAML error: Unresolved alias (the anchor must be set before the alias): x' });
  const bomb = 'a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n';
  t.throws(() => parseConfig(bomb), { name: 'ConfigError', message: /^wott\.yaml:1: YAML error: Excessive alias count/ });
  t.throws(() => parseConfig('scoring:\n  republishInterval: ""\n'), { name: 'ConfigError', message: 'wott.yaml:2: scoring.republishInterval: not a positive duration: "" (examples: 90s, 15m, 24h, 7d)' });
});

t.test('an odd unknown key is quoted in the message (found by npm run fuzz -- config)', async (t) => {
  t.throws(() => parseConfig('" ": ""\n'), { name: 'ConfigError', message: 'wott.yaml:1: " ": unknown field' });
  t.throws(() => parseConfig('broker:\n  "a.b": 1\n'), { name: 'ConfigError', message: 'wott.yaml:2: broker."a.b": unknown field' });
});
