/**
 * npm run fuzz -- TARGET|all|list [--seconds N] [--seed S] [--cases N] [--path P]
 *
 * Prints the seed of every run; on failure, the shrunk input, the seed and path that replay it, and the corpus
 * file it was kept in (replayed by npm test from then on). Exit code 1 on a failure, 2 on a usage error.
 */
import { Command, InvalidArgumentError } from 'commander';
import { corpus, fuzz } from './engine.js';
import { TARGETS } from './registry.js';

function int(name: string, min: number) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return n;
  };
}

const program = new Command('npm run fuzz --')
  .argument('<target>', `one of: ${[...TARGETS.keys()].join(', ')}; "all" runs each in turn; "list" describes them`)
  .option('--seconds <n>', 'run for N seconds (per target with "all")', int('--seconds', 1))
  .option('--cases <n>', 'run N cases (default 100 unless --seconds)', int('--cases', 1))
  .option('--seed <s>', 'fast-check seed (default: random, always printed)', int('--seed', -(2 ** 31)))
  .option('--path <p>', 'replay one case: the path printed with a failure')
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2))
  .parse();

const [name] = program.args as [string];
const opts = program.opts<{ seconds?: number; cases?: number; seed?: number; path?: string }>();

if (name === 'list') {
  for (const t of TARGETS.values()) console.log(`${t.name.padEnd(16)} ${t.description}`);
  process.exit(0);
}
const targets = name === 'all' ? [...TARGETS.values()] : [TARGETS.get(name)];
if (!targets[0]) {
  console.error(`unknown target ${JSON.stringify(name)}: one of ${[...TARGETS.keys()].join(', ')}, all, list`);
  process.exit(2);
}

let failures = 0;
for (const target of targets as NonNullable<(typeof targets)[number]>[]) {
  const seed = opts.seed ?? (Math.random() * 2 ** 31) | 0;
  console.log(`fuzz ${target.name}: seed ${seed}${opts.seconds ? `, ${opts.seconds} s` : `, ${opts.cases ?? 100} cases`}`);
  // The kept failures first: a regression shows at once, whatever the seed.
  for (const { file, entry } of corpus(target.name)) {
    try {
      await target.prepare?.();
      await target.check(entry.input);
    } catch (err) {
      failures++;
      console.log(`  FAIL corpus ${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const mb = (n: number) => Math.round(n / 1048576);
  const before = process.memoryUsage();
  const started = Date.now();
  const outcome = await fuzz(target, { seed, cases: opts.cases, seconds: opts.seconds, path: opts.path });
  const secs = (Date.now() - started) / 1000;
  global.gc?.();
  const after = process.memoryUsage();
  console.log(`  memory: rss ${mb(before.rss)} -> ${mb(after.rss)} MB, heap ${mb(before.heapUsed)} -> ${mb(after.heapUsed)} MB`);
  if (!outcome.failed) {
    console.log(`  ok: ${outcome.cases} cases in ${secs.toFixed(1)} s, no property broken`);
  } else {
    failures++;
    console.log(`  FAIL after ${outcome.cases} cases: ${outcome.error}`);
    if (outcome.input !== undefined) console.log(`  input: ${JSON.stringify(outcome.input).slice(0, 2000)}`);
    if (outcome.path) console.log(`  replay: npm run fuzz -- ${target.name} --seed ${outcome.seed} --path ${outcome.path}`);
    if (outcome.corpusFile) console.log(`  kept in ${outcome.corpusFile} (replayed by npm test)`);
  }
  const figures = target.report?.() ?? {};
  if (Object.keys(figures).length) console.log(`  ${Object.entries(figures).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  console.log(JSON.stringify({ fuzz: target.name, seed: outcome.seed, cases: outcome.cases, seconds: Number(secs.toFixed(1)), rssMb: mb(after.rss), heapMb: mb(after.heapUsed), ...figures, failed: outcome.failed }));
}
process.exit(failures ? 1 : 0);
