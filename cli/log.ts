/**
 * Logs of the long-running commands (gateway, scoring, mosquitto sync, agent): easy to read on a terminal
 * (pino-pretty: time, level, message, then the fields), JSON lines for a journal, a file or a log shipper.
 */
import { Option, type Command } from 'commander';
import { pino, type Logger } from 'pino';

export const LOG_FORMATS = ['auto', 'pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export const LOG_FORMAT_ENV = 'WOTT_LOG_FORMAT';

/** Adds --log-format (or WOTT_LOG_FORMAT): auto is pretty when the log goes to a terminal, JSON otherwise. */
export function withLogFormat(cmd: Command): Command {
  return cmd.addOption(
    new Option('--log-format <format>', 'log lines: pretty (for people), json (one object a line), or auto: pretty on a terminal')
      .choices([...LOG_FORMATS])
      .env(LOG_FORMAT_ENV)
      .default('auto'),
  );
}

/** Pretty when asked, or on `auto` when the stream the log goes to is a terminal. */
export function prettyLogs(format: LogFormat | undefined, stream: { isTTY?: boolean }): boolean {
  return format === 'pretty' || ((format ?? 'auto') === 'auto' && stream.isTTY === true);
}

export interface CliLoggerOptions {
  format?: LogFormat;
  /** 1 (stdout, the default) or 2 (stderr: the agent, whose stdout carries results). */
  fd?: 1 | 2;
  redact?: string[];
}

/** The logger; pino-pretty is loaded only when used (every CLI start would pay for it otherwise). */
export async function cliLogger(name: string, o: CliLoggerOptions = {}): Promise<Logger> {
  const fd = o.fd ?? 1;
  const stream = fd === 1 ? process.stdout : process.stderr;
  const options = { name, ...(o.redact ? { redact: o.redact } : {}) };
  if (!prettyLogs(o.format, stream)) return fd === 1 ? pino(options) : pino(options, pino.destination(2));
  const { default: pretty } = await import('pino-pretty');
  return pino(
    options,
    pretty({
      destination: fd,
      // Written at once: a line must not be lost when the process exits right after it (a refused start).
      sync: true,
      colorize: stream.isTTY === true && !process.env.NO_COLOR,
      translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l',
      ignore: 'pid,hostname',
    }),
  );
}
