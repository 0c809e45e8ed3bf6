/**
 * docker-compose.yml and the Dockerfile, checked as far as a machine without a Docker engine can: the compose file
 * validates with docker-compose (Debian), every file it mounts exists, the image copies every source folder the
 * build compiles, and the gateway starts with the compose wott.yaml (InfluxDB unreachable: it spools).
 */
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { parseConfig } from '../cli/config.js';
import { requireCommand, startGatewayProcess, tempDir } from './helpers.js';
import { run } from './mqtt-helpers.js';

interface Compose {
  services: Record<string, { profiles?: string[]; depends_on?: unknown; command?: string[]; image?: string; build?: string; ports?: string[]; volumes?: string[]; environment?: Record<string, string> }>;
}

t.test('docker-compose.yml validates and mounts files that exist', async (t) => {
  const compose = parse(readFileSync('docker-compose.yml', 'utf8')) as Compose;
  const single = Object.entries(compose.services).filter(([, v]) => !(v as { profiles?: string[] }).profiles).map(([k]) => k);
  t.same(single.sort(), ['grafana', 'influxdb', 'wott'], 'without a profile: the single gateway, InfluxDB and Grafana');
  t.same(compose.services.wott!.ports, ['8443:8443', '8883:8883']);
  t.match(compose.services.influxdb!.image, /^influxdb:2\./, 'InfluxDB 2');
  t.match(compose.services.influxdb!.environment, { DOCKER_INFLUXDB_INIT_MODE: 'setup', DOCKER_INFLUXDB_INIT_BUCKET: 'wott' });
  for (const [name, service] of Object.entries(compose.services)) {
    for (const volume of service.volumes ?? []) {
      const source = volume.split(':')[0]!;
      if (source.startsWith('./')) t.ok(existsSync(source), `${name}: ${source} exists`);
    }
  }
  if (!requireCommand(t, 'docker-compose', 'docker-compose')) return;
  const checked = await run('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q']);
  t.equal(checked.code, 0, `docker-compose config: ${checked.stderr}`);
});

t.test('the Dockerfile copies every folder the build compiles', async (t) => {
  const dockerfile = readFileSync('Dockerfile', 'utf8');
  const include = (JSON.parse(readFileSync('tsconfig.json', 'utf8')) as { include: string[] }).include;
  for (const folder of include) t.match(dockerfile, new RegExp(`^COPY ${folder} ${folder}$`, 'm'), `COPY ${folder}`);
  t.match(dockerfile, /^RUN npm ci/m, 'builds with npm ci (prepare runs the build)');
  t.match(dockerfile, /^USER node$/m, 'does not run as root');
  t.match(dockerfile, /CMD \["gateway", "--data", "\/data", "--config", "\/etc\/wott\/wott.yaml"\]/);
});

t.test('the gateway starts with the compose wott.yaml', async (t) => {
  const config = parseConfig(readFileSync('docker/wott.yaml', 'utf8'), 'docker/wott.yaml');
  t.match(config.scoring.influx, { url: 'http://influxdb:8086', api: 'v1', database: 'wott' });
  t.equal(config.policies.length, 3);
  const { child, log } = await startGatewayProcess(tempDir(t), ['--config', 'docker/wott.yaml']);
  t.teardown(() => new Promise((resolve) => (child.exitCode !== null ? resolve(undefined) : (child.once('exit', resolve), child.kill('SIGTERM')))));
  t.match(log.join(''), /scoring started/);
  t.match(log.join(''), /influxdb:8086 \(v1\)/);
});

t.test('the cluster profile: three gateways on Redis and PostgreSQL behind HAProxy', async (t) => {
  const compose = parse(readFileSync('docker-compose.yml', 'utf8')) as Compose;
  const cluster = Object.entries(compose.services).filter(([, v]) => v.profiles?.includes('cluster')).map(([k]) => k);
  t.same(cluster.sort(), ['haproxy', 'postgres', 'redis', 'wott-1', 'wott-2', 'wott-3', 'wott-init']);
  t.same(compose.services['wott-init']!.command, ['ca', 'init', '--data', '/data', '--config', '/etc/wott/wott.yaml'], 'the CA is made once, before the nodes start');
  for (const n of ['wott-1', 'wott-2', 'wott-3']) t.match(compose.services[n]!.depends_on, { 'wott-init': { condition: 'service_completed_successfully' } }, `${n} waits for the CA`);
  t.same(compose.services.haproxy!.ports, ['9443:8443', '9883:8883'], 'beside the single gateway, not on its ports');
  const config = parseConfig(readFileSync('docker/wott-cluster.yaml', 'utf8'), 'docker/wott-cluster.yaml');
  t.match(config.cluster, { redis: 'redis://redis:6379/0' });
  t.match(config.store, { postgres: 'postgres://wott@postgres:5432/wott' });
  t.notMatch(readFileSync('docker/wott-cluster.yaml', 'utf8'), /postgres:\/\/[^@\s]*:[^@\s]*@/, 'no password in the file (PGPASSWORD)');
  const haproxy = readFileSync('docker/haproxy.cfg', 'utf8');
  for (const n of ['wott-1', 'wott-2', 'wott-3']) {
    t.match(haproxy, new RegExp(`server ${n} ${n}:${config.gateway.mqttPort} check`), `${n}: MQTT backend`);
    t.match(haproxy, new RegExp(`server ${n} ${n}:${config.gateway.httpsPort} check`), `${n}: HTTPS backend`);
  }
  t.match(haproxy, /^defaults[\s\S]*mode tcp/m, 'TCP mode: mTLS passes through to the gateways');
  if (!requireCommand(t, 'docker-compose', 'docker-compose')) return;
  const checked = await run('docker-compose', ['-f', 'docker-compose.yml', '--profile', 'cluster', 'config', '-q']);
  t.equal(checked.code, 0, `docker-compose --profile cluster config: ${checked.stderr}`);
  if (!requireCommand(t, 'haproxy', 'haproxy')) return;
  const valid = await run('haproxy', ['-c', '-f', 'docker/haproxy.cfg']);
  t.equal(valid.code, 0, `haproxy -c: ${valid.stdout}${valid.stderr}`);
});
