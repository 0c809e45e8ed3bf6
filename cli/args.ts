/** Argument parsers with no dependency on the CA or the store, so the agent-only build can use them too. */
import { InvalidArgumentError } from 'commander';
import ms from 'ms';

export function durationArg(value: string): number {
  const parsed = ms(value as ms.StringValue);
  if (typeof parsed !== 'number' || !(parsed > 0)) throw new InvalidArgumentError('expected a duration such as 30m, 24h or 7d');
  return parsed;
}

/** --workers: how many gateway processes (1 to 64). */
export function workersArg(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new InvalidArgumentError('expected a number of workers, 1-64');
  return n;
}
