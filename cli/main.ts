#!/usr/bin/env node
/** The `wott` command line. Results go to stdout, diagnostics to stderr; logs (gateway) are JSON lines on stdout. */
import { hostname } from 'node:os';
import { Command, Option, InvalidArgumentError } from 'commander';
import { chmodSync, existsSync, mkdirSync, rmSync, watch } from 'node:fs';
import { gatewayListenFile, gatewayPidFile, reachableHost, readGatewayPid, reloadRequestFile, takeReloadRequest, type GatewayListen } from './gateway-control.js';
import { basename, dirname, join, resolve } from 'node:path';
import { cliLogger, withLogFormat, type LogFormat } from './log.js';
import { CertificateAuthority, CaError, REVOCATION_REASONS, type RevocationReason } from '../ca/index.js';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { PRIVATE_KEY_MODE } from '../lib/private.js';
import { caExists, encryptCaKeys, rootFingerprint } from '../ca/setup.js';
import { InventoryStateError, recoverInventory } from '../ca/recovery.js';
import { startGateway } from '../gateway/index.js';
import type { PolicyRule } from '../policy/index.js';
import { assertDeviceId, isServiceRole, SERVICE_ROLES } from '../protocol/index.js';
import { FleetService, localActor } from '../fleet/index.js';
import { brokerLimitsFromConfig, ConfigError, httpsLimitsFromConfig, loadConfig, streamLimitsFromConfig } from './config.js';

interface GatewayListenOptions {
  httpsPort?: number;
  mqttPort?: number;
  metricsPort?: number;
  bind?: string;
  httpsBind?: string;
  mqttBind?: string;
  metricsBind?: string;
}
import { durationArg, LOG_REDACT, openCa, passphrase, portArg, prepareDataFolder, withData, type DataOptions } from './options.js';
import { workersArg } from './args.js';
import { registerScoringCommands, scoringFromConfig } from './scoring.js';
import { registerMosquittoCommands } from './mosquitto.js';
import { registerClusterCommands } from './cluster.js';
import { isGatewayWorker, isWorkerMessage, superviseWorkers, workerId } from './workers.js';
import { registerCveCommands } from './cve.js';
import { registerOperatorCommands } from './operator.js';
import { registerStoreCommands } from './store.js';
import { explainDecision } from './explain.js';
import { registerDeviceCommands } from './devices.js';
import { registerAgentCommands } from './agent-commands.js';
import { VERSION } from './version.js';
import { registerCredentialCommands } from './credentials.js';
import { registerAuditCommands } from './audit.js';

async function withCa<T>(opts: DataOptions, fn: (ca: CertificateAuthority) => Promise<T> | T, create = false): Promise<T> {
  const ca = await openCa(opts, { create });
  try {
    return await fn(ca);
  } finally {
    await ca.close();
  }
}

/** Operator actions go through the fleet service, which records them in the audit log as the local OS user. */
async function withFleet<T>(opts: DataOptions, fn: (fleet: FleetService) => Promise<T> | T): Promise<T> {
  return withCa(opts, (ca) => fn(new FleetService(ca, localActor())));
}

/** `wott policy reload` / `wott gateway reload`: check the file, signal the gateway, report its audit entry. */
async function policyReload(opts: DataOptions): Promise<void> {
  const dataDir = resolve(opts.data);
  const { config } = loadConfig(opts.config); // an invalid file is refused here, before the gateway sees it
  const pid = readGatewayPid(dataDir);
  await withFleet(opts, async (fleet) => {
    const before = (await fleet.auditLog()).length;
    writeFileAtomic(reloadRequestFile(dataDir), JSON.stringify({ actor: fleet.actor, at: Date.now() }), 0o600);
    process.kill(pid, 'SIGHUP');
    for (let waited = 0; waited < 10_000; waited += 100) {
      const entry = (await fleet.auditLog()).slice(before).find((e) => e.action === 'policy.reload');
      if (entry) {
        if (entry.outcome === 'refused') throw new InvalidArgumentError(`the gateway refused the policies: ${entry.detail ?? ''}`);
        process.stdout.write(`gateway (pid ${pid}) reloaded ${config.policies.length} rule(s)\n`);
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`gateway (pid ${pid}) did not confirm the reload within 10 s: see its log`);
  });
}

export function buildProgram(): Command {
  const program = new Command('wott')
    .description("Let's Encrypt for IoT, enforced at the MQTT broker")
    .version(VERSION)
    .option('--server <url>', 'work on a remote gateway through its HTTPS API (device commands), e.g. https://gw:8443')
    .option('--credentials <dir>', 'with --server: folder with NAME.key, NAME.crt and ca.crt (wott operator create)')
    // Before the command only: `wott scoring` and `wott mosquitto sync` have a --credentials of their own.
    .enablePositionalOptions()
    .showHelpAfterError()
    // Every command finds its data folder the same way, and only `ca init` and `gateway` may create a CA there.
    .hook('preAction', (_program, action) => prepareDataFolder(action));

  withLogFormat(withData(program.command('gateway'), { needs: 'create-ca' }))
    .description('run the CA + EST on HTTPS (and, as they land, the broker and scoring) in one process')
    .addOption(new Option('--https-port <port>', 'HTTPS port for EST and the CRL (0 = pick a free one)').argParser(portArg))
    .addOption(new Option('--mqtt-port <port>', 'MQTT over TLS port (0 = pick a free one)').argParser(portArg))
    .addOption(new Option('--metrics-port <port>', 'Prometheus metrics port, plain HTTP (0 = pick a free one)').argParser(portArg))
    .option('--bind <address>', 'address the HTTPS and MQTT listeners bind to (default 0.0.0.0)')
    .option('--https-bind <address>', 'address of the HTTPS (EST, CRL) listener')
    .option('--mqtt-bind <address>', 'address of the MQTT listener')
    .option('--metrics-bind <address>', 'address of the metrics listener (default 127.0.0.1)')
    .addOption(new Option('--workers <n>', 'run N gateway processes sharing the ports (needs a cluster: section; docs/cluster.md)').argParser(workersArg))
    .action(async (opts: DataOptions & GatewayListenOptions & { logFormat?: LogFormat; workers?: number }) => {
      const { config, source } = loadConfig(opts.config);
      const log = await cliLogger('wott', { format: opts.logFormat, redact: LOG_REDACT });
      if (source && !isGatewayWorker()) log.info({ config: source }, 'configuration loaded');
      if (opts.workers !== undefined && opts.workers > 1 && !isGatewayWorker()) {
        if (!config.cluster) throw new InvalidArgumentError('--workers needs a cluster: section with redis: in wott.yaml (the workers share Redis; docs/cluster.md)');
        // The CA exists before the workers start, so that N of them never race to create it.
        await (await openCa(opts, { create: true })).close();
        superviseWorkers(opts.workers, { dataDir: resolve(opts.data), ...(source ? { configFile: source } : {}), log });
        return;
      }
      const gateway = await startGateway({
        dataDir: resolve(opts.data),
        ...(config.store.postgres ? { store: config.store } : {}),
        httpsPort: opts.httpsPort ?? config.gateway.httpsPort,
        hosts: config.gateway.hosts,
        publicUrl: config.gateway.publicUrl,
        certLifetimeMs: config.ca.certLifetime,
        crlValidityMs: config.ca.crlValidity,
        ocspValidityMs: config.ca.ocspValidity,
        claim: config.enrollment.claim,
        enrollment: {
          rateLimit: config.enrollment.rateLimit,
          maxUnclaimed: config.enrollment.maxUnclaimed,
          unclaimedTtlMs: config.enrollment.unclaimedTtl,
          maxInProgress: config.enrollment.maxInProgress,
          busyRetryAfterSeconds: config.enrollment.busyRetryAfter,
        },
        passphrase: passphrase(),
        log,
        mqttPort: opts.mqttPort ?? config.gateway.mqttPort,
        bind: {
          https: opts.httpsBind ?? opts.bind ?? config.gateway.httpsBind ?? config.gateway.bind,
          mqtt: opts.mqttBind ?? opts.bind ?? config.gateway.mqttBind ?? config.gateway.bind,
          metrics: opts.metricsBind ?? config.gateway.metricsBind,
        },
        ...(opts.metricsPort !== undefined || config.gateway.metricsPort !== false
          ? { metricsPort: opts.metricsPort ?? (config.gateway.metricsPort as number) }
          : {}),
        limits: brokerLimitsFromConfig(config),
        httpsLimits: httpsLimitsFromConfig(config),
        policies: config.policies,
        initialScore: config.scoring.initialScore,
        onDowngrade: config.broker.onDowngrade,
        eventIntervalMs: config.broker.eventInterval,
        ...(config.scoring.enabled ? { scoring: scoringFromConfig(config) } : {}),
        ...(config.mosquitto ? { mosquitto: config.mosquitto } : {}),
        ...(config.cluster
          ? {
              cluster: {
                redis: config.cluster.redis,
                nodeId: config.cluster.node ? `${config.cluster.node}${isGatewayWorker() ? `-w${workerId()}` : ''}` : `${hostname()}-${process.pid}`,
                leaseMs: config.cluster.lease,
                busMaxLength: config.cluster.busMaxLength,
                qos0InFlight: config.cluster.qos0InFlight,
              },
            }
          : {}),
        audit: { schedule: config.audit.schedule, intervalMs: config.audit.interval, firstRunMs: config.audit.firstRun },
        api: {
          tokenTtlMs: config.enrollment.tokenTtl,
          sessionTtlMs: config.api.sessionTtl,
          refusalLimits: config.api.refusals,
          ...streamLimitsFromConfig(config),
        },
      });
      const dataDir = resolve(opts.data);
      // `wott audit run` asks the gateway on its data folder through this file (every worker writes the same).
      const httpsBind = opts.httpsBind ?? opts.bind ?? config.gateway.httpsBind ?? config.gateway.bind ?? '0.0.0.0';
      writeFileAtomic(gatewayListenFile(dataDir), JSON.stringify({ host: reachableHost(httpsBind), httpsPort: gateway.httpsPort } satisfies GatewayListen) + '\n', 0o600);
      // `wott policy reload` finds the gateway through this file and signals it (as `kill -HUP` does); with
      // --workers the file names the primary, which passes reloads on.
      if (!isGatewayWorker()) writeFileAtomic(gatewayPidFile(dataDir), `${process.pid}\n`, 0o600);
      const reload = (actor: string) => {
        let rules: PolicyRule[];
        try {
          rules = loadConfig(opts.config).config.policies;
        } catch (err) {
          log.error({ err: (err as Error).message }, 'policy reload refused: the configuration is invalid; the running policies are kept');
          void gateway.fleet.as(actor).recordPolicyReload('refused', (err as Error).message);
          return;
        }
        if (JSON.stringify(rules) === JSON.stringify(current)) return; // a save that changed nothing the gateway uses
        current = rules;
        gateway.reloadPolicies(rules, actor).catch((err: Error) => log.error({ err: err.message }, 'policy reload refused; the running policies are kept'));
      };
      let current: PolicyRule[] | undefined = config.policies;
      process.on('message', (message: unknown) => {
        if (!isWorkerMessage(message)) return;
        if (message.reload !== 'file:wott.yaml') current = undefined; // asked for explicitly, as SIGHUP
        reload(message.reload);
      });
      process.on('SIGHUP', () => {
        current = undefined; // asked for explicitly: reload (and record it) even when nothing changed
        reload(takeReloadRequest(dataDir) ?? 'signal:SIGHUP');
      });
      // The configuration file is watched too: saving it reloads the policies (editors write in bursts: debounced).
      const configFile = source;
      let debounce: NodeJS.Timeout | undefined;
      const watcher = configFile && !isGatewayWorker()
        ? watch(dirname(resolve(configFile)), (_event, name) => {
            if (name !== basename(configFile)) return;
            clearTimeout(debounce);
            debounce = setTimeout(() => reload('file:wott.yaml'), 300);
          })
        : undefined;
      watcher?.unref();
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        log.info({ signal }, 'shutting down');
        if (!isGatewayWorker()) {
          rmSync(gatewayPidFile(dataDir), { force: true });
          rmSync(gatewayListenFile(dataDir), { force: true });
        }
        gateway.close().then(
          () => process.exit(0),
          (err: Error) => {
            log.error({ err: err.message }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });

  registerScoringCommands(program);
  registerMosquittoCommands(program);
  registerClusterCommands(program);
  registerCveCommands(program);
  registerOperatorCommands(program);
  registerStoreCommands(program);

  const ca = program.command('ca').description('certificate authority');
  withData(ca.command('init'), { needs: 'create-ca' })
    .description('create the root and issuing CA and the inventory (done automatically on first start)')
    .action(async (opts: DataOptions) => {
      await withCa(
        opts,
        (authority) => {
          process.stdout.write(`CA ready in ${authority.dataDir}\nroot: ${authority.material.root.subject.replace(/\n/g, ', ')}\n` +
            `root SHA-256 fingerprint: ${authority.material.root.fingerprint256}\n`);
        },
        true,
      );
    });
  withData(ca.command('fingerprint'))
    .description("print the root CA's SHA-256 fingerprint: what devices pin at enrollment (the agent takes it with or without colons)")
    .action((opts: DataOptions) => {
      const dataDir = resolve(opts.data);
      if (!caExists(dataDir)) throw new InvalidArgumentError(`no CA in ${dataDir}: give --data (or start the gateway there first)`);
      process.stdout.write(rootFingerprint(dataDir) + '\n');
    });
  withData(ca.command('encrypt'))
    .description('encrypt the CA keys with the passphrase in WOTT_CA_PASSPHRASE (scrypt); run with the gateway stopped')
    .action((opts: DataOptions) => {
      for (const line of encryptCaKeys(resolve(opts.data), passphrase() ?? '')) process.stdout.write(line + '\n');
      process.stdout.write('from now on, start wott with WOTT_CA_PASSPHRASE set to this passphrase\n');
    });
  withData(ca.command('recover-inventory'))
    .description('rebuild a lost inventory.db (or bring a restored one up to date) with the revocations in a CRL this CA signed')
    .option('--crl <file>', 'CRL to take the revocations from, DER or PEM (default: DATA/crl.der)')
    .option('--empty', 'the inventory is lost and no CRL is left: knowingly start with no revocations')
    .action(async (opts: DataOptions & { crl?: string; empty?: boolean }) => {
      const result = await recoverInventory(resolve(opts.data), { crlPath: opts.crl && resolve(opts.crl), empty: opts.empty });
      for (const moved of result.movedAside) process.stdout.write(`moved the lost database's ${moved.replace(/.*(-wal|-shm).*/, '$1')} aside: ${moved}\n`);
      process.stdout.write(
        (result.crl ? `CRL number ${result.crl.number} of ${result.crl.thisUpdate.toISOString()} (${result.crl.path}): ` : 'no CRL: ') +
          `${result.revoked.length} revocation(s) ${result.created ? 'in the new' : 'added to the'} inventory\n`,
      );
      for (const serial of result.revoked) process.stdout.write(`revoked ${serial}\n`);
      if (result.created) {
        process.stderr.write(
          'wott: the new inventory knows no devices, certificates, tokens, quarantines or claims: every device must be enrolled\n' +
            'again with a new token (wott token create) before its certificate expires (it cannot renew), and quarantines must be\n' +
            'set again. Superseded (not revoked) certificates are accepted until they expire.\n',
        );
      }
    });
  withData(ca.command('list'))
    .description('show devices and their certificates')
    .option('--json', 'machine-readable output')
    .action(async (opts: DataOptions & { json?: boolean }) => {
      await withFleet(opts, async (fleet) => {
        const devices = (await fleet.list()).map((d) => ({
          ...d,
          certificates: d.certificates.map(({ der: _der, ...rest }) => ({
            ...rest,
            expired: Date.parse(rest.notAfter) <= Date.now(),
          })),
        }));
        if (opts.json) return void process.stdout.write(JSON.stringify(devices, null, 2) + '\n');
        for (const d of devices) {
          process.stdout.write(`${d.id}\t${d.state}\t${d.certificates.length} certificate(s)\n`);
          for (const c of d.certificates) {
            process.stdout.write(`  ${c.serial}\t${c.expired && c.status === 'active' ? 'expired' : c.status}\tuntil ${c.notAfter}\n`);
          }
        }
      });
    });
  withData(ca.command('revoke'))
    .description('revoke a certificate, or every certificate of a device; regenerates the CRL')
    .option('--device <id>', 'revoke all certificates of this device and mark it revoked')
    .option('--serial <hex>', 'revoke one certificate')
    .addOption(new Option('--reason <reason>', 'CRL reason').choices([...REVOCATION_REASONS]).default('unspecified'))
    .action(async (opts: DataOptions & { device?: string; serial?: string; reason: RevocationReason }) => {
      if (!opts.device === !opts.serial) throw new InvalidArgumentError('give exactly one of --device or --serial');
      await withFleet(opts, async (fleet) => {
        const serials = await fleet.revoke(opts.device ? { deviceId: opts.device } : { serial: opts.serial! }, opts.reason);
        process.stdout.write(serials.map((s) => `revoked ${s}\n`).join('') || 'nothing to revoke\n');
      });
    });
  withData(ca.command('backup'))
    .description('copy the inventory (devices, certificates, revocations, audit log) to a new file while the gateway runs')
    .requiredOption('--out <file>', 'the copy to write (must not exist); keep it private, like the data folder')
    .action(async (opts: DataOptions & { out: string }) => {
      const out = resolve(opts.out);
      if (existsSync(out)) throw new InvalidArgumentError(`${out} exists: give a new file`);
      await withFleet(opts, async (fleet) => {
        await fleet.backup(out);
        chmodSync(out, 0o600);
        process.stdout.write(`inventory copied to ${out}\n`);
      });
    });
  withData(ca.command('service'))
    .description('issue a service or operator certificate with a role; writes key (0600), certificate and CA chain')
    .addOption(new Option('--role <role>', 'role').choices([...SERVICE_ROLES]).makeOptionMandatory())
    .requiredOption('--name <name>', 'instance name')
    .requiredOption('--out <dir>', 'output folder')
    .action(async (opts: DataOptions & { role: string; name: string; out: string }) => {
      if (!isServiceRole(opts.role)) throw new InvalidArgumentError('unknown role');
      const role = opts.role;
      await withCa(opts, async (authority) => {
        const issued = await new FleetService(authority, localActor()).issueService(role, opts.name);
        mkdirSync(opts.out, { recursive: true });
        writeFileAtomic(join(opts.out, `${opts.role}.key`), issued.keyPem, PRIVATE_KEY_MODE);
        writeFileAtomic(join(opts.out, `${opts.role}.crt`), issued.pem);
        writeFileAtomic(join(opts.out, 'ca.crt'), authority.caCertificates().map((c) => c.toString()).join(''));
        process.stdout.write(`issued ${issued.commonName} serial ${issued.serial} until ${issued.notAfter.toISOString()}\n`);
      });
    });

  const token = program.command('token').description('one-time enrollment tokens');
  withData(token.command('create'))
    .description('create a one-time enrollment token for a device; prints only the token')
    .requiredOption('--device <id>', 'device id the token is bound to')
    .addOption(new Option('--ttl <duration>', 'lifetime, e.g. 30m, 24h, 7d').argParser(durationArg))
    .action(async (opts: DataOptions & { device: string; ttl?: number }) => {
      const { config } = loadConfig(opts.config);
      await withFleet(opts, async (fleet) => {
        const { token: value } = await fleet.createToken(opts.device, opts.ttl ?? config.enrollment.tokenTtl);
        process.stdout.write(value + '\n');
      });
    });

  registerDeviceCommands(program);
  registerCredentialCommands(program);

  const audit = program.command('audit').description('who did what to the fleet, and when');
  withData(audit.command('log'))
    .description('operator actions (tokens, claims, quarantines, releases, revocations, service certificates), refused ones too')
    .option('--device <id>', 'only actions about this device')
    .option('--json', 'one JSON object per line')
    .action(async (opts: DataOptions & { device?: string; json?: boolean }) => {
      await withFleet(opts, async (fleet) => {
        for (const e of await fleet.auditLog(opts.device !== undefined ? { device: assertDeviceId(opts.device) } : {})) {
          if (opts.json) process.stdout.write(JSON.stringify(e) + '\n');
          else {
            const what = [e.device, e.target].filter(Boolean).join(' ');
            process.stdout.write(`${e.time}  ${e.actor}  ${e.action} ${what}  ${e.outcome}${e.detail ? `: ${e.detail}` : ''}\n`);
          }
        }
      });
    });

  registerAuditCommands(program);

  const policy = program.command('policy').description('Trust Score topic policies');
  withData(program.commands.find((c) => c.name() === 'gateway')!.command('reload'))
    .description('make the running gateway take the policies from its wott.yaml (same as wott policy reload)')
    .action(async (opts: DataOptions) => {
      // --data and --config may land on `gateway` or on `reload`: prepareDataFolder takes them from either.
      await policyReload(opts);
    });
  withData(policy.command('reload'))
    .description('make the running gateway re-read the policies from its wott.yaml (checked here first); recorded in the audit log')
    .action(async (opts: DataOptions) => {
      await policyReload(opts);
    });
  withData(policy.command('explain'))
    .description('show the decision for a device, topic and action: score, rule matched, decision, why')
    .requiredOption('--device <id>', 'device id')
    .requiredOption('--topic <topic>', 'topic (publish) or topic filter (subscribe)')
    .addOption(new Option('--action <action>', 'publish or subscribe').choices(['publish', 'subscribe']).makeOptionMandatory())
    .option('--mqtt-port <port>', 'port of the running gateway to read the live score from', portArg)
    .option('--json', 'machine-readable output')
    .action(async (opts: DataOptions & { device: string; topic: string; action: 'publish' | 'subscribe'; mqttPort?: number; json?: boolean }) => {
      const { config } = loadConfig(opts.config);
      await withFleet(opts, async (fleet) => {
        const result = await explainDecision(fleet, resolve(opts.data), config, opts.device, opts.topic, opts.action, opts.mqttPort ?? config.gateway.mqttPort);
        if (opts.json) return void process.stdout.write(JSON.stringify(result, null, 2) + '\n');
        process.stdout.write(
          `device:   ${result.device} (${result.state ?? 'unknown to the CA'})\n` +
            `score:    ${result.score} (${result.scoreSource})\n` +
            `rule:     ${result.rule ?? '(none)'}${result.threshold !== undefined ? ` needs ${result.threshold}` : ''}\n` +
            `decision: ${result.allowed ? 'ALLOW' : 'DENY'} ${result.action} ${result.topic}\n` +
            `why:      ${result.reason}\n`,
        );
      });
    });

  registerAgentCommands(program);

  return program;
}

async function main(): Promise<void> {
  // `wott … | head`: the reader went away; stop quietly as other Unix tools do, without a stack trace.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(0);
      throw err;
    });
  }
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (err) {
    const known = err instanceof CaError || err instanceof ConfigError || err instanceof InventoryStateError || err instanceof InvalidArgumentError || (err instanceof Error && ['InvalidDeviceIdError', 'InvalidTagsError', 'FleetRefusal', 'RemoteError', 'DataFolderError', 'NoCaError', 'MosquittoFolderError', 'CredentialError', 'ChromiumMissingError'].includes(err.name));
    process.stderr.write(`wott: ${err instanceof Error ? err.message : String(err)}\n`);
    if (!known && err instanceof Error && process.env.WOTT_DEBUG) process.stderr.write(`${err.stack}\n`);
    process.exitCode = known ? 2 : 1;
  }
}

await main();
