/** Options and settings several commands share. */
import { InvalidArgumentError, type Command } from 'commander';
import { resolve } from 'node:path';
import { CertificateAuthority } from '../ca/index.js';
import { loadConfig } from './config.js';
import { openSelectedInventory } from '../store/index.js';

export const DEFAULT_DATA = './wott-data';

export const passphrase = () => process.env.WOTT_CA_PASSPHRASE || undefined;

export interface DataOptions {
  data: string;
  config?: string;
}

/** Adds the options every command takes. */
export function withData(cmd: Command): Command {
  return cmd
    .option('--data <dir>', 'data folder (CA keys, inventory, CRL)', DEFAULT_DATA)
    .option('--config <file>', 'configuration file (default: ./wott.yaml when present)');
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

/** The CA in --data, with the lifetimes from the config. */
export async function openCa(opts: DataOptions): Promise<CertificateAuthority> {
  const { config } = loadConfig(opts.config);
  const inventory = await openSelectedInventory(config.store);
  try {
    return await CertificateAuthority.open({
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
