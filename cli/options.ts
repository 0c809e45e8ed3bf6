/** Options and settings several commands share. */
import { InvalidArgumentError, type Command } from 'commander';
import ms from 'ms';

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

export function durationArg(value: string): number {
  const parsed = ms(value as ms.StringValue);
  if (typeof parsed !== 'number' || !(parsed > 0)) throw new InvalidArgumentError('expected a duration such as 30m, 24h or 7d');
  return parsed;
}
