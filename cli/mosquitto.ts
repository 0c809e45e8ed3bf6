/** `wott mosquitto config` and `wott mosquitto sync`: the same trust policies on Eclipse Mosquitto 2.x. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { resolve } from 'node:path';
import { FleetView } from '../fleet/index.js';
import { cliLogger, withLogFormat, type LogFormat } from './log.js';
import { isDeviceId } from '../protocol/index.js';
import { readSyncCredentials, startMosquittoSync, writeMosquittoConfig } from '../mosquitto-compat/index.js';
import { loadConfig } from './config.js';
import { listenPortArg, LOG_REDACT, openCa, withData, type DataOptions } from './options.js';

const collect = (value: string, previous: string[]) => [...previous, value];

export function registerMosquittoCommands(program: Command): void {
  const mosquitto = program.command('mosquitto').description('Eclipse Mosquitto 2.x with the same trust policies (Dynamic Security)');

  withData(mosquitto.command('config'))
    .description('write mosquitto.conf, a server certificate from our CA, the CA chain, the CRL and the initial Dynamic Security JSON')
    .requiredOption('--out <dir>', 'folder for every file (give Mosquitto `-c DIR/mosquitto.conf`)')
    .addOption(new Option('--port <port>', 'TLS listener port').argParser(listenPortArg).default(8883))
    .option('--bind <address>', 'listen address (default: all addresses)')
    .option('--host <name>', 'extra host name or address for the server certificate (repeatable)', collect, [] as string[])
    .option('--admin <name>', "name of the sync's admin identity: certificate CN admin:NAME", 'mosquitto-sync')
    .option('--plugin <path>', 'path of mosquitto_dynamic_security.so (default: found on this machine)')
    .option('--user <name>', 'user Mosquitto drops to when started as root; files are handed to it when we run as root', 'mosquitto')
    .option('--reset-dynsec', 'overwrite an existing dynamic-security.json (Mosquitto keeps its live state there)')
    .action(
      async (opts: DataOptions & { out: string; port: number; bind?: string; host: string[]; admin: string; plugin?: string; user: string; resetDynsec?: boolean }) => {
        if (!isDeviceId(opts.admin)) throw new InvalidArgumentError(`--admin "${opts.admin}" must follow the device id rules (a-z, 0-9, '.', '_', '-')`);
        const authority = await openCa(opts);
        try {
          const written = await writeMosquittoConfig({
            authority,
            out: opts.out,
            port: opts.port,
            bind: opts.bind,
            hosts: opts.host,
            adminName: opts.admin,
            pluginPath: opts.plugin,
            user: opts.user,
            resetDynsec: opts.resetDynsec,
          });
          const p = written.paths;
          process.stdout.write(
            `wrote ${p.conf}\n` +
              `  TLS listener on port ${opts.port}${opts.bind ? ` (${opts.bind})` : ''}, server certificate ${written.server.serial} until ${written.server.notAfter.toISOString()}\n` +
              `  plugin ${written.pluginPath}\n` +
              `  ${written.dynsecKept ? 'kept the existing' : 'wrote'} ${p.dynsec} (service clients: ${written.services.join(', ')})\n` +
              (written.ownership ? `  ${written.ownership}\n` : '') +
              `next:\n` +
              `  wott ca service --role admin --name ${opts.admin} --out ./mosquitto-admin\n` +
              `  mosquitto -c ${p.conf}\n` +
              `  wott mosquitto sync --mqtt mqtts://localhost:${opts.port} --credentials ./mosquitto-admin --dir ${p.dir}\n`,
          );
        } finally {
          authority.close();
        }
      },
    );

  withLogFormat(withData(mosquitto.command('sync')))
    .description("keep Mosquitto's Dynamic Security in line with the policies, live scores, revocations and the CRL")
    .requiredOption('--mqtt <url>', "Mosquitto's TLS listener, e.g. mqtts://localhost:8883")
    .option('--credentials <dir>', 'folder with admin.key, admin.crt and ca.crt (wott ca service --role admin)', './mosquitto-admin')
    .option('--dir <dir>', 'the folder `wott mosquitto config --out` wrote: its crl.pem is kept current and Mosquitto (mosquitto.pid) gets SIGHUP')
    .option('--reload-command <command...>', 'run this instead of SIGHUP to make Mosquitto re-read the CRL, e.g. systemctl reload mosquitto')
    .option('--insecure-hostname', "do not check that Mosquitto's certificate names the host (it is still checked against our CA)")
    .action(async (opts: DataOptions & { mqtt: string; credentials: string; dir?: string; reloadCommand?: string[]; insecureHostname?: boolean; logFormat?: LogFormat }) => {
      if (!/^mqtts:\/\/[^/]+$/.test(opts.mqtt)) throw new InvalidArgumentError('--mqtt must be mqtts://HOST:PORT (Mosquitto with the generated TLS listener)');
      const { config } = loadConfig(opts.config);
      const log = await cliLogger('wott-mosquitto', { format: opts.logFormat, redact: LOG_REDACT });
      let creds: ReturnType<typeof readSyncCredentials>;
      try {
        creds = readSyncCredentials(resolve(opts.credentials));
      } catch (err) {
        throw new InvalidArgumentError((err as Error).message);
      }
      const authority = await openCa(opts);
      const view = await FleetView.open(authority.inventory);
      const sync = await startMosquittoSync({
        url: opts.mqtt,
        key: creds.key,
        cert: creds.cert,
        ca: creds.ca,
        view,
        authority,
        policies: config.policies,
        initialScore: config.scoring.initialScore,
        onDowngrade: config.broker.onDowngrade,
        ...(opts.dir ? { mosquittoDir: resolve(opts.dir) } : {}),
        ...(opts.reloadCommand ? { reloadCommand: opts.reloadCommand } : {}),
        ...(opts.insecureHostname ? { checkServerIdentity: () => undefined } : {}),
        log,
      });
      if (config.policies.length === 0) log.warn('no policies configured: devices may only use their own wott/ topics (see wott.example.yaml)');
      void sync.ready.then(() => log.info({ mqtt: opts.mqtt, identity: creds.identity, stats: sync.stats }, 'Mosquitto in sync'));
      let stopping = false;
      const stop = () => {
        if (stopping) return;
        stopping = true;
        void sync
          .close()
          .finally(() => view.close())
          .finally(() => authority.close())
          .then(() => process.exit(0));
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
}
