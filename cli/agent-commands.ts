/**
 * `wott agent …`: shared by the full CLI (cli/main.ts) and the agent-only build (cli/agent-main.ts, bundled into
 * the wott-agent package), so imports stay on the device side: no CA, store or gateway.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { agentUnit, CredentialFiles, DEFAULT_CREDENTIALS_DIR, enrollAgent, reportPeer, runAgent } from '../agent/index.js';
import { durationArg } from './args.js';
import { cliLogger, withLogFormat, type LogFormat } from './log.js';

function ratingArg(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError('expected a number from 0 (hostile) to 1 (behaves as expected)');
  return n;
}

export function registerAgentCommands(program: Command): Command {
  const agent = program.command('agent').description('the device agent: enrollment, renewal, telemetry');
  const agentLog = (format?: LogFormat) => cliLogger('wott-agent', { format, fd: 2, redact: ['token'] });
  withLogFormat(agent.command('enroll'))
    .description('fetch the CA (checked against --ca-fingerprint), make a P-256 key on this device, enroll over EST')
    .requiredOption('--server <url>', 'gateway EST base URL, e.g. https://gw.example:8443 (several, comma-separated: tried in turn when one is down)')
    .requiredOption('--device <id>', 'this device id')
    .option('--token <token>', 'one-time enrollment token (or WOTT_ENROLL_TOKEN)')
    .option('--dir <dir>', 'where key, certificate and CA chain live', '/var/lib/wott')
    .option('--ca-fingerprint <sha256>', 'SHA-256 fingerprint of the CA root, as `wott ca fingerprint` and the gateway print it (colons and case optional)')
    .addOption(new Option('--key-store <store>', 'where the device key lives').choices(['file', 'tpm']).default('file'))
    .option('--tpm-handle <handle>', 'key store tpm: persistent handle of the TPM signing key', '0x81010001')
    .option('--tpm-tcti <tcti>', 'key store tpm: TCTI of the TPM (default: $TPM2TOOLS_TCTI)')
    .action(async (opts: {
      server: string;
      device: string;
      token?: string;
      dir: string;
      caFingerprint?: string;
      keyStore: 'file' | 'tpm';
      tpmHandle: string;
      tpmTcti?: string;
      logFormat?: LogFormat;
    }) => {
      const token = opts.token ?? process.env.WOTT_ENROLL_TOKEN;
      if (!token) throw new InvalidArgumentError('give --token or set WOTT_ENROLL_TOKEN');
      const state = await enrollAgent({ ...opts, token, log: await agentLog(opts.logFormat) });
      process.stdout.write(`enrolled ${state.device}; credentials in ${resolve(opts.dir)}\n`);
    });
  withLogFormat(agent.command('run'))
    .description('renew the certificate automatically and publish telemetry every --interval')
    .option('--dir <dir>', 'agent directory', '/var/lib/wott')
    .option('--mqtt <url>', 'broker URL, or several comma-separated (default: mqtts://<each EST host>:8883)')
    .addOption(new Option('--interval <duration>', 'time between reports').argParser(durationArg).default(15 * 60_000, '15m'))
    .option('--root <dir>', 'filesystem root to collect from (containers, tests)', '/')
    .option('--once', 'collect and publish one report, then exit')
    .option('--print', 'print one report (with the full package list) without publishing')
    .option('--credentials-dir <dir>', 'where credentials delivered to this device are written (tmpfs)', DEFAULT_CREDENTIALS_DIR)
    .addOption(new Option('--credential-fetch <duration>', 'while MQTT is down, fetch credentials over HTTPS (mutual TLS) this often; also once at start').argParser(durationArg).default(60_000, '1m'))
    .action(async (opts: { dir: string; mqtt?: string; interval: number; root: string; once?: boolean; print?: boolean; credentialsDir: string; credentialFetch: number; logFormat?: LogFormat }) => {
      const log = await agentLog(opts.logFormat);
      const running = await runAgent({ dir: opts.dir, mqtt: opts.mqtt, intervalMs: opts.interval, root: opts.root, once: opts.once, print: opts.print, credentialsDir: opts.credentialsDir, credentialFetchMs: opts.credentialFetch, log });
      if (!running) return;
      const stop = () => void running.stop().then(() => process.exit(0));
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });

  agent
    .command('report-peer')
    .description("report what this device observed about another device (scoring weighs it by this device's own score)")
    .requiredOption('--subject <id>', 'the device reported about')
    .requiredOption('--rating <r>', '1 = behaves as expected … 0 = hostile', ratingArg)
    .requiredOption('--reason <text>', 'what was observed (at most 300 characters; no secrets: operators read it)')
    .option('--dir <dir>', 'agent directory', '/var/lib/wott')
    .option('--mqtt <url>', 'broker URL, or several comma-separated (default: mqtts://<each EST host>:8883)')
    .action(async (opts: { subject: string; rating: number; reason: string; dir: string; mqtt?: string }) => {
      const report = await reportPeer({ dir: opts.dir, mqtt: opts.mqtt }, opts.subject, opts.rating, opts.reason);
      process.stdout.write(`reported ${report.subject} (rating ${report.rating}, report ${report.reportId})\n`);
    });

  agent
    .command('credentials')
    .description('the credentials this device holds: names and versions (never values)')
    .option('--credentials-dir <dir>', 'credentials folder', DEFAULT_CREDENTIALS_DIR)
    .option('--json', 'JSON lines')
    .action((opts: { credentialsDir: string; json?: boolean }) => {
      const held = new CredentialFiles(resolve(opts.credentialsDir)).list();
      if (!opts.json) process.stdout.write('NAME\tVERSION\tUSER\n');
      for (const c of held) process.stdout.write(opts.json ? JSON.stringify(c) + '\n' : `${c.name}\t${c.version}\t${c.linuxUser ?? '-'}\n`);
    });

  agent
    .command('service')
    .description('print the systemd unit that runs this wott agent (save it as /etc/systemd/system/wott-agent.service)')
    .action(() => {
      // The Node.js and the script running now, by absolute path: right for any npm prefix, and no PATH lookup.
      process.stdout.write(agentUnit([process.execPath, realpathSync(process.argv[1]!)]));
    });
  return agent;
}
