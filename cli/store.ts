/** `wott store …`: where the fleet's state lives. `migrate` moves an embedded installation into PostgreSQL. */
import { InvalidArgumentError, type Command } from 'commander';
import { resolve } from 'node:path';
import { importSqliteData } from '../store/index.js';

function sqliteArg(value: string): string {
  if (!value.startsWith('sqlite:') || value.length === 'sqlite:'.length) throw new InvalidArgumentError('expected sqlite:DIR (the data folder of an embedded installation)');
  return resolve(value.slice('sqlite:'.length));
}

function postgresArg(value: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new InvalidArgumentError('expected a postgres:// URL');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new InvalidArgumentError('expected a postgres:// URL');
  return value;
}

export function registerStoreCommands(program: Command): void {
  const store = program.command('store').description("where the fleet's state lives: the data folder's SQLite files, or PostgreSQL");
  store
    .command('migrate')
    .description('copy an installation (stop its gateway first) into an empty PostgreSQL database: devices, certificates, tokens, revocations, CRLs, audit log, scores, CVE data, action decisions, credentials (sealed: copy credentials.key with ca/)')
    .requiredOption('--from <sqlite:DIR>', 'the data folder to copy from (only read)', sqliteArg)
    .requiredOption('--to <url>', 'postgres://user@host:port/database (give the password in PGPASSWORD, not here: command lines are visible to others)', postgresArg)
    .action(async (opts: { from: string; to: string }) => {
      const c = await importSqliteData(opts.from, opts.to);
      const u = new URL(opts.to);
      u.password = '';
      process.stdout.write(
        `copied ${opts.from} to ${u.toString()}: ${c.devices} devices, ${c.certificates} certificates, ${c.tokens} tokens, ${c.revocations} revocations, ` +
          `${c.crls} CRLs, ${c.audit} audit entries, ${c.latestScores} scores (${c.history} history points, ${c.scoreRecords} scoring records), ` +
          `${c.vulnEntries} CVE entries, ${c.actionDecisions} action decisions, ${c.credentials} credentials\n`,
      );
      process.stderr.write(`next: set store.postgres in wott.yaml to this URL and start the gateway (the SQLite files are left as they were); copy ca/ and credentials.key to every node\n`);
    });
}
