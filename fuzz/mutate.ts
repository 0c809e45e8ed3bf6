/**
 * Mutation arbitraries: valid seed inputs bent a few steps at a time, so that the fuzzers reach past the first
 * syntax check into the validators. Each mutation is a list of small fast-check-chosen operations applied to a
 * seed, so fast-check shrinks a failure to the fewest operations that still break the property.
 */
import fc from 'fast-check';

/** Values that have broken parsers before: wrong types, edges of number ranges, odd strings. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(
    null,
    true,
    false,
    0,
    -1,
    1.5,
    -0,
    1e308,
    -1e308,
    Number.MAX_SAFE_INTEGER + 2,
    2 ** 31,
    '',
    ' ',
    '\u0000',
    '\ud800',
    '\uffff',
    '../../etc/passwd',
    '%00',
    '__proto__',
    'constructor',
    '1970-01-01T00:00:00Z',
    '9999-12-31T23:59:59Z',
    '2026-02-30T25:61:61Z',
    'NaN',
    '-Infinity',
    '+/#',
    'wott/v1/#',
    [],
    {},
    [[[[[[[[[[]]]]]]]]]],
    { __proto__: { polluted: true } },
  ),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.integer(),
  fc.double(),
  fc.jsonValue({ maxDepth: 3 }),
  fc.nat({ max: 5000 }).map((n) => 'x'.repeat(n)),
);

type JsonOp =
  | { op: 'set'; at: number; key: string; value: unknown }
  | { op: 'delete'; at: number }
  | { op: 'replace'; at: number; value: unknown }
  | { op: 'duplicate'; at: number }
  | { op: 'wrap'; at: number };

const jsonOp: fc.Arbitrary<JsonOp> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), key: fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('__proto__', 'constructor', 'device', 'time', 'schema')), value: hostileValue }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('replace' as const), at: fc.nat(), value: hostileValue }),
  fc.record({ op: fc.constant('duplicate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('wrap' as const), at: fc.nat() }),
);

/** Every [container, key] slot of a JSON tree, depth first; the root is slot [holder, 'root']. */
function slots(holder: Record<string, unknown>): Array<[Record<string, unknown> | unknown[], string | number]> {
  const out: Array<[Record<string, unknown> | unknown[], string | number]> = [[holder, 'root']];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) {
      v.forEach((item, i) => {
        out.push([v, i]);
        walk(item);
      });
    } else if (v !== null && typeof v === 'object') {
      for (const k of Object.keys(v)) {
        out.push([v as Record<string, unknown>, k]);
        walk((v as Record<string, unknown>)[k]);
      }
    }
  };
  walk(holder.root);
  return out;
}

function applyJsonOp(holder: Record<string, unknown>, op: JsonOp): void {
  const all = slots(holder);
  const [container, key] = all[op.at % all.length]!;
  const c = container as Record<string | number, unknown>;
  switch (op.op) {
    case 'replace':
      c[key] = structuredClone(op.value);
      break;
    case 'delete':
      if (Array.isArray(container)) container.splice(key as number, 1);
      else if (key !== 'root' || container !== holder) delete c[key];
      break;
    case 'set': {
      const target = c[key];
      if (target !== null && typeof target === 'object' && !Array.isArray(target)) {
        // defineProperty: a "__proto__" key becomes an own property, as JSON.parse would make it.
        Object.defineProperty(target, op.key, { value: structuredClone(op.value), enumerable: true, writable: true, configurable: true });
      } else if (Array.isArray(target)) target.push(structuredClone(op.value));
      else c[key] = structuredClone(op.value);
      break;
    }
    case 'duplicate': {
      const target = c[key];
      if (Array.isArray(target) && target.length > 0) {
        // Many copies: lists with limits (packages, sources) must refuse, not grow without bound.
        const copies = Array.from({ length: 1 + (op.at % 300) }, () => structuredClone(target[op.at % target.length]));
        target.push(...copies);
      } else c[key] = [structuredClone(target), structuredClone(target)];
      break;
    }
    case 'wrap':
      c[key] = { value: c[key] };
      break;
  }
}

/** `seed` (JSON) with 1-4 structural mutations. */
export function mutatedJson(seed: unknown): fc.Arbitrary<unknown> {
  return fc.array(jsonOp, { minLength: 1, maxLength: 4 }).map((ops) => {
    const holder: Record<string, unknown> = { root: structuredClone(seed) };
    for (const op of ops) applyJsonOp(holder, op);
    return holder.root;
  });
}

type TextOp =
  | { op: 'insert'; at: number; text: string }
  | { op: 'delete'; at: number; length: number }
  | { op: 'truncate'; at: number }
  | { op: 'repeat'; at: number; length: number; times: number };

const textOp: fc.Arbitrary<TextOp> = fc.oneof(
  fc.record({
    op: fc.constant('insert' as const),
    at: fc.nat(),
    text: fc.oneof(
      fc.string({ unit: 'binary', maxLength: 8 }),
      fc.constantFrom('"', '{', '}', '[', ']', ',', ':', '\\', '\\u', '\n', '\r\n', '\t', '- ', ': ', '&a', '*a', '!!binary', '<<: ', '%YAML 1.2\n', '\u0000', '\ufeff', '\ud83d', '0x', '1e999', '-', '::ffff:', '255.255.255.256'),
    ),
  }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('repeat' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 80 }), times: fc.integer({ min: 2, max: 50 }) }),
);

function applyTextOp(text: string, op: TextOp): string {
  const at = text.length === 0 ? 0 : op.at % (text.length + 1);
  switch (op.op) {
    case 'insert':
      return text.slice(0, at) + op.text + text.slice(at);
    case 'delete':
      return text.slice(0, at) + text.slice(at + op.length);
    case 'truncate':
      return text.slice(0, at);
    case 'repeat':
      return text.slice(0, at) + text.slice(at, at + op.length).repeat(op.times) + text.slice(at + op.length);
  }
}

/** `seed` text with 1-4 character-level mutations (broken syntax, cut documents, repeated runs). */
export function mutatedText(seed: string): fc.Arbitrary<string> {
  return fc.array(textOp, { minLength: 1, maxLength: 4 }).map((ops) => ops.reduce(applyTextOp, seed));
}

/** Any of: a structurally mutated seed, a textually mutated seed, or unrelated text. */
export function jsonPayload(seeds: readonly unknown[]): fc.Arbitrary<string> {
  const seed = fc.constantFrom(...seeds);
  return fc.oneof(
    { weight: 5, arbitrary: seed.chain((s) => mutatedJson(s)).map((v) => JSON.stringify(v) ?? 'undefined') },
    { weight: 3, arbitrary: seed.chain((s) => mutatedText(JSON.stringify(s))) },
    { weight: 1, arbitrary: seed.map((s) => JSON.stringify(s)) },
    { weight: 1, arbitrary: fc.oneof(fc.json(), fc.string({ unit: 'binary' })) },
  );
}
