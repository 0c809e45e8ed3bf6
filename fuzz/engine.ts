/**
 * Runs a target under fast-check and keeps failures: the shared core of `npm run fuzz` and test/fuzz/*.test.ts.
 * A failing input is written to test/fuzz/corpus/TARGET/ (named by its hash; the target name comes from the fixed
 * TARGETS list, never from outside input), where the tests replay it for ever after.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { repoRoot, type FuzzTarget } from './targets.js';

export interface FuzzOptions {
  seed: number;
  /** Stop after this many cases (default: unbounded when `seconds` is given, else 100). */
  cases?: number;
  /** Stop after this many seconds. */
  seconds?: number;
  /** Replay one case: the `path` fast-check printed with the seed. */
  path?: string;
  /** Where failures are written (default test/fuzz/corpus); null: not written. */
  corpusDir?: string | null;
}

export interface FuzzOutcome {
  target: string;
  seed: number;
  cases: number;
  failed: boolean;
  /** On failure: what broke, the shrunk input, the replay path and where it was kept. */
  error?: string;
  input?: unknown;
  path?: string;
  corpusFile?: string;
}

export interface CorpusEntry {
  target: string;
  seed: number;
  path: string;
  error: string;
  input: unknown;
}

export function corpusDir(): string {
  return join(repoRoot(), 'test/fuzz/corpus');
}

export async function fuzz<I>(target: FuzzTarget<I>, options: FuzzOptions): Promise<FuzzOutcome> {
  await target.prepare?.();
  const property = fc.asyncProperty(target.input(), async (input) => {
    await target.check(input);
  });
  const timed = options.seconds !== undefined;
  let details: fc.RunDetails<[I]>;
  try {
    details = await fc.check(property, {
      seed: options.seed,
      numRuns: options.cases ?? (timed ? Number.MAX_SAFE_INTEGER : 100),
      ...(timed ? { interruptAfterTimeLimit: options.seconds! * 1000, markInterruptAsFailure: false } : {}),
      ...(options.path ? { path: options.path, endOnFailure: false } : {}),
    });
  } finally {
    await target.close?.();
  }
  const outcome: FuzzOutcome = { target: target.name, seed: details.seed, cases: details.numRuns, failed: details.failed };
  if (!details.failed || !details.counterexample) {
    if (details.failed) outcome.error = String(details.errorInstance ?? 'failed without a counterexample');
    return outcome;
  }
  const [input] = details.counterexample;
  const err = details.errorInstance;
  outcome.error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  outcome.input = input;
  outcome.path = details.counterexamplePath ?? undefined;
  const dir = options.corpusDir === undefined ? corpusDir() : options.corpusDir;
  if (dir !== null) {
    const entry: CorpusEntry = { target: target.name, seed: details.seed, path: outcome.path ?? '', error: outcome.error, input };
    const text = JSON.stringify(entry, null, 2) + '\n';
    const name = createHash('sha256').update(JSON.stringify(input)).digest('hex').slice(0, 16);
    mkdirSync(join(dir, target.name), { recursive: true });
    outcome.corpusFile = join(dir, target.name, `${name}.json`);
    writeFileSync(outcome.corpusFile, text);
  }
  return outcome;
}

/** The kept failures of a target (empty when none were ever found). */
export function corpus(target: string, dir = corpusDir()): Array<{ file: string; entry: CorpusEntry }> {
  let files: string[];
  try {
    files = readdirSync(join(dir, target)).filter((f) => f.endsWith('.json')).sort();
  } catch {
    return [];
  }
  return files.map((f) => ({ file: join(dir, target, f), entry: JSON.parse(readFileSync(join(dir, target, f), 'utf8')) as CorpusEntry }));
}
