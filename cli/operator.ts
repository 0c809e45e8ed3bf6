/**
 * `wott operator …`: people and tools that use the HTTPS API. `create` issues an operator certificate (with a
 * PKCS#12 for browsers); `login` prints a one-time link that signs a browser in; `sessions` and `logout` list and end
 * browser sessions. Run on the gateway's host (they use its data folder); each is recorded in the audit log.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { resolve } from 'node:path';
import { FleetAdapter, Sessions } from '../api/index.js';
import { generateP12Password, writeOperatorFiles, type CertificateAuthority } from '../ca/index.js';
import { FleetService, FleetView, localActor } from '../fleet/index.js';
import { API_PREFIX, isDeviceId, isOperatorRole, OPERATOR_ROLES, type OperatorRole } from '../protocol/index.js';
import { openSelectedSessionStore } from '../store/index.js';
import { loadConfig } from './config.js';
import { openCa, withData, type DataOptions } from './options.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

function roleArg(value: string): OperatorRole {
  if (!isOperatorRole(value)) throw new InvalidArgumentError(`one of ${OPERATOR_ROLES.join(', ')}`);
  return value;
}

/** The OS user as an operator name, when it is one (same rules as a device id). */
function defaultName(): string | undefined {
  const user = localActor().slice('local:'.length).toLowerCase();
  return isDeviceId(user) ? user : undefined;
}

async function withAdapter<T>(opts: DataOptions, fn: (fleet: FleetAdapter, sessions: Sessions, ca: CertificateAuthority) => Promise<T>): Promise<T> {
  const { config } = loadConfig(opts.config);
  const ca = await openCa(opts);
  const view = await FleetView.open(ca.inventory);
  const store = await openSelectedSessionStore(config.store, resolve(opts.data));
  try {
    const adapter = new FleetAdapter(new FleetService(ca, localActor()), view, { tokenTtlMs: config.enrollment.tokenTtl });
    return await fn(adapter, new Sessions(store, { sessionTtlMs: config.api.sessionTtl }), ca);
  } finally {
    await store.close();
    await view.close();
    await ca.close();
  }
}

export function registerOperatorCommands(program: Command): void {
  const operator = program.command('operator').description('operators of the HTTPS API: certificates, browser sign-in, sessions');

  withData(operator.command('create'))
    .description('issue an operator certificate; writes NAME.key (0600), NAME.crt, ca.crt and NAME.p12 (for a browser)')
    .argument('<name>', 'operator name (a-z, 0-9, ".", "_", "-")')
    .addOption(new Option('--role <role>', 'what the operator may do').choices([...OPERATOR_ROLES]).makeOptionMandatory())
    .requiredOption('--out <dir>', 'output folder')
    .option('--password-stdin', 'read the PKCS#12 password from stdin instead of generating one')
    .action(async (name: string, opts: DataOptions & { role: string; out: string; passwordStdin?: boolean }) => {
      const role = roleArg(opts.role);
      if (!isDeviceId(name)) throw new InvalidArgumentError(`operator name "${String(name).slice(0, 80)}": 1-63 of a-z, 0-9, ".", "_", "-"`);
      const password = opts.passwordStdin ? await readStdin() : generateP12Password();
      if (password.length < 8) throw new InvalidArgumentError('the PKCS#12 password must be at least 8 characters');
      await withAdapter(opts, async (fleet, _sessions, ca) => {
        const issued = await fleet.issueOperator(role, name, localActor());
        const files = writeOperatorFiles(ca, issued, resolve(opts.out), name, password);
        process.stdout.write(
          `issued ${issued.commonName} serial ${issued.serial} until ${issued.notAfter.toISOString()}\n` +
            `key ${files.key}\ncertificate ${files.cert}\nCA chain ${files.ca}\nPKCS#12 ${files.p12}\n` +
            (opts.passwordStdin ? '' : `PKCS#12 password (shown once, not stored): ${password}\n`),
        );
      });
    });

  withData(operator.command('login'))
    .description('print a one-time link (valid 10 minutes) that signs a browser in with ROLE')
    .addOption(new Option('--role <role>', 'what the session may do').choices([...OPERATOR_ROLES]).makeOptionMandatory())
    .option('--name <name>', 'who signs in (default: your OS user name)')
    .option('--url <url>', 'base URL of the gateway as the browser reaches it (default: gateway.publicUrl, or https://HOST:PORT)')
    .action(async (opts: DataOptions & { role: string; name?: string; url?: string }) => {
      const role = roleArg(opts.role);
      const name = opts.name ?? defaultName();
      if (!name || !isDeviceId(name)) throw new InvalidArgumentError('give --name (1-63 of a-z, 0-9, ".", "_", "-")');
      const { config } = loadConfig(opts.config);
      const base = (opts.url ?? config.gateway.publicUrl ?? `https://${config.gateway.hosts[0] ?? 'localhost'}:${config.gateway.httpsPort}`).replace(/\/+$/, '');
      await withAdapter(opts, async (fleet, sessions) => {
        const link = await sessions.createLink(role, name, localActor());
        await fleet.record({ actor: localActor(), action: 'session.link', target: `session:${role}:${name}`, outcome: 'ok', detail: `expires ${link.expiresAt.toISOString()}` });
        process.stdout.write(`${base}${API_PREFIX}/login/${link.secret}\n`);
        process.stderr.write(`open it once before ${link.expiresAt.toISOString()}; it signs the browser in as ${role} ${name}\n`);
      });
    });

  withData(operator.command('sessions'))
    .description('list live browser sessions')
    .option('--json', 'machine-readable output')
    .action(async (opts: DataOptions & { json?: boolean }) => {
      const store = await openSelectedSessionStore(loadConfig(opts.config).config.store, resolve(opts.data));
      try {
        const items = (await new Sessions(store).list()).map(({ secretHash: _secret, endedAt: _ended, ...rest }) => rest);
        if (opts.json) return void process.stdout.write(JSON.stringify(items, null, 2) + '\n');
        for (const s of items) process.stdout.write(`${s.id}\t${s.role}\t${s.name}\tuntil ${s.expiresAt}\tfrom ${s.source ?? '?'}\n`);
        if (!items.length) process.stdout.write('no live sessions\n');
      } finally {
        await store.close();
      }
    });

  withData(operator.command('logout'))
    .description('end a browser session at once')
    .argument('<id>', 'session id (wott operator sessions)')
    .action(async (id: string, opts: DataOptions) => {
      await withAdapter(opts, async (fleet, sessions) => {
        const ended = await sessions.end(id);
        await fleet.record({ actor: localActor(), action: 'session.end', target: id.slice(0, 64), outcome: ended ? 'ok' : 'refused', ...(ended ? {} : { detail: 'no live session with this id' }) });
        if (!ended) throw new InvalidArgumentError(`no live session "${String(id).slice(0, 64)}"`);
        process.stdout.write(`session ${id} ended\n`);
      });
    });
}
