/**
 * The benchmark harness: every suite measures its baselines and the project in the same run, on the same machine,
 * and reports ratios (never absolute goals baked into tests). Output: a table for people and one JSON line for tools.
 */
export interface Measurement {
  name: string;
  value: number;
  unit: string;
  /** Marks a measurement as a baseline the others are compared to. */
  baseline?: boolean;
}

export interface SuiteResult {
  suite: string;
  measurements: Measurement[];
  /** name -> [numerator measurement, denominator measurement] */
  ratios: Array<{ name: string; of: string; to: string; value: number }>;
  goals: Array<{ name: string; met: boolean; detail: string }>;
}

export interface Suite {
  name: string;
  description: string;
  /** `args`: the command line after the suite names (e.g. `--minutes 30`), for suites that take options. */
  run(options: { quick: boolean; args?: string[] }): Promise<SuiteResult>;
}

/** Runs `fn` repeatedly for about `ms` milliseconds (after a short warm-up) and returns operations per second. */
export async function opsPerSecond(fn: () => unknown, ms = 2000, batch = 1): Promise<number> {
  const warmUntil = performance.now() + Math.min(300, ms / 5);
  while (performance.now() < warmUntil) await fn();
  let ops = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    await fn();
    ops += batch;
    now = performance.now();
  }
  return (ops * 1000) / (now - start);
}

export function ratio(result: SuiteResult, name: string, of: string, to: string): number {
  const a = result.measurements.find((m) => m.name === of);
  const b = result.measurements.find((m) => m.name === to);
  if (!a || !b) throw new Error(`ratio ${name}: missing measurement`);
  const value = a.value / b.value;
  result.ratios.push({ name, of, to, value });
  return value;
}

export function print(result: SuiteResult): void {
  const width = Math.max(...result.measurements.map((m) => m.name.length), 10);
  process.stdout.write(`\n== ${result.suite} ==\n`);
  for (const m of result.measurements) {
    process.stdout.write(`${m.name.padEnd(width)}  ${m.value.toFixed(m.value < 100 ? 2 : 0).padStart(10)} ${m.unit}${m.baseline ? '  (baseline)' : ''}\n`);
  }
  for (const r of result.ratios) process.stdout.write(`ratio ${r.name}: ${r.value.toFixed(2)}x\n`);
  for (const g of result.goals) process.stdout.write(`goal ${g.name}: ${g.met ? 'MET' : 'NOT MET'} (${g.detail})\n`);
  process.stdout.write(JSON.stringify({ bench: result.suite, measurements: result.measurements, ratios: result.ratios, goals: result.goals }) + '\n');
}

/**
 * A suite's `--name 30` / `--name=30` options as numbers (non-negative), refusing any name not in `known`; `--quick`
 * is the runner's and skipped.
 */
export function numberOptions(args: string[], suite: string, known: readonly string[]): Map<string, number> {
  const given = new Map<string, number>();
  for (let i = 0; i < args.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(args[i]!);
    if (!m || m[1] === 'quick') continue;
    const raw = m[2] ?? args[++i];
    const value = Number(raw);
    if (raw === undefined || !Number.isFinite(value) || value < 0) throw new Error(`--${m[1]}: expected a number, got ${raw ?? 'nothing'}`);
    given.set(m[1]!, value);
  }
  for (const k of given.keys()) if (!known.includes(k)) throw new Error(`unknown ${suite} option --${k}; known: ${known.map((x) => `--${x}`).join(', ')}`);
  return given;
}
