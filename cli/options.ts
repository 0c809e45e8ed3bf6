/** Options and settings several commands share. */
import { InvalidArgumentError, type Command } from 'commander';
import { dirname, resolve } from 'node:path';
import { caExists, CertificateAuthority } from '../ca/index.js';
import { existsSync } from 'node:fs';
import { scoringPaths } from '../scoring/index.js';
import { loadConfig } from './config.js';
import { openSelectedInventory } from '../store/index.js';

export const DEFAULT_DATA = './wott-data';
/** The data folder when no --data is given (before the config file's `data:` and ./wott-data). */
export const DATA_ENV = 'WOTT_DATA';

export const passphrase = () => process.env.WOTT_CA_PASSPHRASE || undefined;

export interface DataOptions {
  /** The data folder, absolute: filled in by prepareDataFolder before the action runs. */
  data: string;
  config?: string;
}

/**
 * What a command does with the data folder:
 * - `ca`: needs the CA there and refuses without it (every command but the two below);
 * - `create-ca`: may create it (`wott ca init`, `wott gateway`);
 * - `folder`: keeps its own files there and never touches a CA it does not find (`wott scoring` on its own host);
 * - `scores`: reads the CA's folder or the score store of `wott scoring` on its own host (`wott score show`).
 * `remote`: with --server the command works on a remote gateway and needs no data folder.
 */
export interface DataUse {
  needs?: 'ca' | 'create-ca' | 'folder' | 'scores';
  remote?: boolean;
}

const dataUse = new WeakMap<Command, Required<DataUse>>();

/** How `cmd` uses the data folder, when it takes --data at all (tests walk the command tree with it). */
export function dataUseOf(cmd: Command): Required<DataUse> | undefined {
  return dataUse.get(cmd);
}

/** Adds the options every command that works on the data folder takes. */
export function withData(cmd: Command, use: DataUse = {}): Command {
  dataUse.set(cmd, { needs: use.needs ?? 'ca', remote: use.remote ?? false });
  return cmd
    .option('--data <dir>', `data folder (CA keys, inventory, CRL); default: $${DATA_ENV}, else data: in the config file, else ${DEFAULT_DATA}`)
    .option('--config <file>', 'configuration file (default: ./wott.yaml when present)');
}

/** Refused: the data folder the command found has no CA. */
export class DataFolderError extends Error {
  override name = 'DataFolderError';
}

/** A value given on the command line to `cmd` or to a command above it (`wott gateway --data X reload`). */
function fromCommandLine(cmd: Command, key: string): string | undefined {
  for (let c: Command | null = cmd; c; c = c.parent) {
    if (c.getOptionValueSource(key) === 'cli') return c.getOptionValue(key) as string;
  }
  return undefined;
}

export interface DataFolder {
  dir: string;
  /** Where it came from, for messages: "given with --data", "from data: in /etc/wott/wott.yaml", "the default …". */
  from: string;
}

/**
 * The data folder, looked for in this order: --data, $WOTT_DATA, `data:` in the config file (--config, else
 * ./wott.yaml when present; relative to the file's folder), then ./wott-data.
 */
export function locateDataFolder(given: { data?: string; config?: string }, env: NodeJS.ProcessEnv = process.env): DataFolder {
  if (given.data) return { dir: resolve(given.data), from: 'given with --data' };
  const fromEnv = env[DATA_ENV];
  if (fromEnv) return { dir: resolve(fromEnv), from: `from $${DATA_ENV}` };
  const { config, source } = loadConfig(given.config);
  if (config.data !== undefined && source) return { dir: resolve(dirname(resolve(source)), config.data), from: `from data: in ${resolve(source)}` };
  const why = source ? `no data: in ${resolve(source)}` : 'no config file (--config, ./wott.yaml)';
  return { dir: resolve(DEFAULT_DATA), from: `the default ${DEFAULT_DATA}: no --data, no $${DATA_ENV}, ${why}` };
}

/**
 * Run before every command's action (a preAction hook on the program): finds the data folder, puts it in the
 * command's --data, and refuses when the command needs a CA and there is none, so that a command run from the
 * wrong folder cannot start a second CA (or print a token no gateway knows).
 */
export function prepareDataFolder(action: Command): void {
  const use = dataUse.get(action);
  if (!use) return; // agent commands: their own --dir
  if (use.remote && action.optsWithGlobals<{ server?: string }>().server) return; // the remote gateway's data, not ours
  const given = { data: fromCommandLine(action, 'data'), config: fromCommandLine(action, 'config') };
  const found = locateDataFolder(given);
  action.setOptionValueWithSource('data', found.dir, given.data ? 'cli' : 'default');
  if (given.config) action.setOptionValueWithSource('config', given.config, 'cli');
  const scores = use.needs === 'scores' && existsSync(scoringPaths(found.dir).store);
  if ((use.needs === 'ca' || use.needs === 'scores') && !caExists(found.dir) && !scores) {
    throw new DataFolderError(
      `no CA in ${found.dir} (${found.from})${use.needs === 'scores' ? ', nor the score store of a `wott scoring` host' : ''}.\n` +
        `  The data folder is --data, else $${DATA_ENV}, else data: in the config file (--config or ./wott.yaml), else ${DEFAULT_DATA}.\n` +
        `  Point at your CA's folder with --data DIR, ${DATA_ENV}=DIR or data: DIR in wott.yaml` +
        (use.remote ? ', or work on a remote gateway with --server URL --credentials DIR' : '') +
        `; or create a new CA there with \`wott ca init --data ${found.dir}\` (or by starting \`wott gateway\` with it).`,
    );
  }
}


/** Never logged, whatever a log line carries. */
export const LOG_REDACT = ['req.headers.authorization', 'token', 'passphrase', 'password', '*.token', '*.password'];

export { durationArg } from './args.js';

/** A port to bind, where 0 picks a free one. */
export function portArg(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number 0-65535');
  return n;
}

/** A port another program listens on (0 is not a port there). */
export function listenPortArg(value: string): number {
  const n = portArg(value);
  if (n === 0) throw new InvalidArgumentError('expected a port number 1-65535');
  return n;
}

/** The CA in --data, with the lifetimes from the config; created only with `create` (wott ca init). */
export async function openCa(opts: DataOptions, { create = false } = {}): Promise<CertificateAuthority> {
  const { config } = loadConfig(opts.config);
  const inventory = await openSelectedInventory(config.store);
  try {
    return await CertificateAuthority.open({
      create,
      dataDir: resolve(opts.data),
      ...(inventory ? { inventory } : {}),
      passphrase: passphrase(),
      certLifetimeMs: config.ca.certLifetime,
      crlValidityMs: config.ca.crlValidity,
    });
  } catch (err) {
    await inventory?.close(); // its connections would keep the command from exiting
    throw err;
  }
}
