/**
 * The Trust Score model: weights, half-lives and ceilings, shipped as scoring/model.yaml and overridable field by
 * field in wott.yaml (`scoring.model`). Validated strictly: a typo in a weight must not silently fall back.
 */
import { readFileSync } from 'node:fs';
import ms from 'ms';
import { parse } from 'yaml';
import { z } from 'zod';
import { stateCeiling } from '../policy/index.js';

/** "90s", "15m", "24h", "7d" or a number of seconds → milliseconds. */
export const durationSchema = z
  .union([z.string(), z.number()])
  .transform((value, ctx) => {
    let parsed: number | undefined;
    try {
      parsed = typeof value === 'number' ? value * 1000 : ms(value as ms.StringValue);
    } catch {
      // ms() throws on "" and on strings over 100 characters instead of returning undefined.
      parsed = undefined;
    }
    if (typeof parsed !== 'number' || !Number.isFinite(parsed) || parsed <= 0) {
      ctx.addIssue({ code: 'custom', message: `not a positive duration: ${JSON.stringify(value)} (examples: 90s, 15m, 24h, 7d)` });
      return z.NEVER;
    }
    return parsed;
  });

const unit = z.number().min(0).max(1);
const weight = z.number().min(0).max(100);
const positive = z.number().positive().max(1e9);
const port = z.number().int().min(0).max(65535);

export const STATE_FACTORS = [
  'firewall',
  'mac',
  'defaultCredentials',
  'failedLogins',
  'ports',
  'cves',
  'ssh',
  'insecureServices',
  'autoUpdates',
  'rebootRequired',
  'cpuVulnerabilities',
  'keyStore',
  'certificate',
] as const;
export type StateFactorId = (typeof STATE_FACTORS)[number];

const penaltyCurve = { max: unit, scale: positive };

/**
 * The unclaimed/quarantined/revoked ceilings are the broker's (policy/effective-score.ts), the same for every model.
 * wott.yaml files written when they were model fields still load, as long as they say what the broker enforces.
 */
const brokerCeiling = (state: 'unclaimed' | 'quarantined' | 'revoked') => {
  const enforced = stateCeiling(state)!.ceiling;
  return z
    .number()
    .refine((v) => v === enforced, { message: `fixed at ${enforced}: the broker enforces it for ${state} devices whatever the model says; remove this field` })
    .optional();
};

export const modelSchema = z
  .object({
    version: z.string().min(1).max(64),
    prior: unit,
    state: z
      .object({
        weights: z.object(Object.fromEntries(STATE_FACTORS.map((f) => [f, weight])) as Record<StateFactorId, typeof weight>).strict(),
        failedLogins: z.object({ good: z.number().min(0), bad: z.number().positive() }).strict(),
        ports: z.object({ minor: z.array(port).max(1000), minorPenalty: unit, risky: z.array(port).max(1000), riskyPenalty: unit }).strict(),
        cves: z
          .object({
            budget: positive,
            points: z.object({ low: z.number().min(0), medium: z.number().min(0), high: z.number().min(0), critical: z.number().min(0), unknown: z.number().min(0) }).strict(),
            remoteMultiplier: z.number().min(1).max(100),
            exposedMultiplier: z.number().min(1).max(100),
            unknownInventory: unit,
          })
          .strict(),
        ssh: z.record(z.string().regex(/^[a-z0-9]+$/).max(64), z.object({ bad: z.string().max(64), penalty: unit, fix: z.string().max(200) }).strict()),
        certificate: z.object({ late: unit }).strict(),
      })
      .strict()
      .refine((s) => s.failedLogins.bad > s.failedLogins.good, { message: 'failedLogins.bad must be above failedLogins.good', path: ['failedLogins'] })
      .refine((s) => STATE_FACTORS.some((f) => s.weights[f] > 0), { message: 'at least one state weight must be positive', path: ['weights'] }),
    ceilings: z
      .object({ defaultCredentials: unit, noTelemetry: unit, unclaimed: brokerCeiling('unclaimed'), quarantined: brokerCeiling('quarantined'), revoked: brokerCeiling('revoked') })
      .strict(),
    staleness: z.object({ after: durationSchema, halfLife: durationSchema }).strict(),
    behaviour: z
      .object({
        halfLife: durationSchema,
        authFailures: z.object(penaltyCurve).strict(),
        denials: z.object(penaltyCurve).strict(),
        churn: z.object({ ...penaltyCurve, allowance: z.number().min(0) }).strict(),
        rate: z
          .object({ ...penaltyCurve, factor: z.number().min(1), minRate: z.number().min(0), warmup: z.number().int().min(1).max(10_000), alpha: z.number().gt(0).max(1) })
          .strict(),
      })
      .strict(),
    peers: z
      .object({
        halfLife: durationSchema,
        maxAge: durationSchema,
        k: z.number().int().min(1).max(100),
        max: unit,
        minReporterScore: unit,
        rate: z.object({ max: z.number().int().min(1).max(1_000_000), per: durationSchema }).strict(),
      })
      .strict(),
    lateralMovement: z
      .object({
        halfLife: durationSchema,
        maxAge: durationSchema,
        k: z.number().int().min(1).max(100),
        max: unit,
        scale: positive,
        minReporterScore: unit,
        addresses: z.number().int().min(16).max(10_000_000),
      })
      .strict(),
  })
  .strict();

export type ScoreModel = z.output<typeof modelSchema>;
export type ModelInput = z.input<typeof modelSchema>;

// Beside this module: the source folder, or dist/scoring/ (the build copies it there). Spelled through the parent
// folder so that the bundled CLI (dist/cli/wott.js) finds it too.
const MODEL_FILE = new URL('../scoring/model.yaml', import.meta.url);

let shipped: unknown;
/** The model as shipped (scoring/model.yaml), not yet validated. */
export function shippedModelSource(): unknown {
  shipped ??= parse(readFileSync(MODEL_FILE, 'utf8'));
  return structuredClone(shipped);
}

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Objects merge key by key; arrays and scalars replace. */
export function mergeOverride(base: unknown, override: unknown, path: string[] = []): unknown {
  if (!isPlainObject(override) || !isPlainObject(base)) return override === undefined ? base : override;
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) {
    if (FORBIDDEN_KEYS.has(key)) throw new Error(`${[...path, key].join('.')}: forbidden key`);
    out[key] = mergeOverride(base[key], value, [...path, key]);
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export class ModelError extends Error {
  constructor(
    message: string,
    readonly path: Array<string | number> = [],
  ) {
    super(message);
    this.name = 'ModelError';
  }
}

/** The shipped model with `override` (from wott.yaml) applied; throws ModelError naming the field. */
export function loadModel(override?: unknown): ScoreModel {
  let merged: unknown;
  try {
    merged = mergeOverride(shippedModelSource(), override ?? {});
  } catch (err) {
    throw new ModelError((err as Error).message);
  }
  const result = modelSchema.safeParse(merged);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = issue.code === 'unrecognized_keys' ? [...issue.path, String(issue.keys[0])] : issue.path;
  const message = issue.code === 'unrecognized_keys' ? 'unknown field' : issue.message;
  throw new ModelError(`${path.map(String).join('.') || '(root)'}: ${message}`, path as Array<string | number>);
}
