#!/usr/bin/env node
/**
 * The `wott` command of the wott-agent Debian package: esbuild bundles this file into one script (packaging/build.ts),
 * so a device needs only Node.js. It knows `wott agent …`; every other command belongs to the full wott package
 * (gateway, CA, store, with a native SQLite addon a device has no use for) and says so instead of failing obscurely.
 */
import { Command, InvalidArgumentError } from 'commander';
import { registerAgentCommands } from './agent-commands.js';
import { VERSION } from './version.js';

export function buildAgentProgram(): Command {
  const program = new Command('wott')
    .description('wott device agent (package wott-agent): only `wott agent …`; the gateway and the other commands are in the full wott package')
    .version(VERSION)
    .showHelpAfterError();
  registerAgentCommands(program);
  program.on('command:*', (operands: string[]) => {
    process.stderr.write(`wott: \`wott ${operands[0]}\` needs the full wott package (wott_${VERSION}_*.deb or the npm tarball); this is wott-agent, which has only \`wott agent …\`\n`);
    process.exitCode = 2;
  });
  return program;
}

async function main(): Promise<void> {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(0);
      throw err;
    });
  }
  try {
    await buildAgentProgram().parseAsync(process.argv);
  } catch (err) {
    process.stderr.write(`wott: ${err instanceof Error ? err.message : String(err)}\n`);
    if (err instanceof Error && process.env.WOTT_DEBUG) process.stderr.write(`${err.stack}\n`);
    process.exitCode = err instanceof InvalidArgumentError ? 2 : 1;
  }
}

await main();
