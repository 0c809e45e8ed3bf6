/**
 * The bundles are one-byte scripts: characters above U+00FF left by esbuild (in comments and regular expression
 * literals) are escaped, the program means the same, and a character that cannot be escaped without changing the
 * program (a tagged template's raw text) fails the build instead of passing silently.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { latin1Source } from '../../packaging/cli-bundle.js';
// Its child processes run without tap's coverage hook (see helpers.ts).
import '../helpers.js';

/** Evaluates a module's source and returns its exports. */
const load = async (code: string) => (await import(`data:text/javascript,${encodeURIComponent(code)}`)) as Record<string, unknown>;

t.test('comments and regular expressions are escaped, and mean the same', async (t) => {
  const code = [
    '// a dash — and an arrow →, and Latin-1 é stays',
    'export class A {',
    '  /** topic → rule (…) */',
    '  m = 1;',
    '}',
    'export const strip = (s) => s.replace(/^ › /, "");',
    'export const klass = /[←-↓]+/u.exec("x\\u2192\\u2191\\u2193y")[0];',
    'export const half = 6 / 3 / 2; // a division is not a regular expression: ≠',
    'export const astral = /😀/u.test("a\\ud83d\\ude00b");',
  ].join('\n');
  const out = latin1Source(code);
  t.notMatch(out, /[^\x00-\xff]/, 'nothing above U+00FF left');
  t.match(out, /é stays/, 'Latin-1 is kept as written (V8 stores it in one byte)');
  t.match(out, /topic \\u2192 rule \(\\u2026\)/);
  const before = await load(code);
  const after = await load(out);
  t.equal((after.strip as (s: string) => string)(' › x'), 'x');
  t.equal(after.klass, before.klass);
  t.equal(after.klass, '→↑↓');
  t.equal(after.half, 1);
  t.equal(after.astral, true, 'a surrogate pair escaped as two halves still matches with the u flag');
  t.equal(latin1Source('export const ascii = 1; // plain\n'), 'export const ascii = 1; // plain\n', 'nothing to do: unchanged');
});

t.test('a character whose escape would change the program fails the build', async (t) => {
  t.throws(() => latin1Source('export const raw = String.raw`x→y`;\n'), /U\+2192 at line 1 is neither in a comment nor in a regular expression/);
  t.throws(() => latin1Source('// fine →\nexport const s = "→";\n'), /U\+2192 at line 2/, 'a string (esbuild escapes these; a bundle that has one was not made by it)');
  t.throws(() => latin1Source('export const x = ; // →'), SyntaxError, 'not JavaScript: refused');
});

t.test('the built wott command and its source are one-byte', async (t) => {
  const bundle = readFileSync(resolve('dist/cli/wott.js'), 'utf8');
  t.notMatch(bundle, /[^\x00-\xff]/, 'dist/cli/wott.js has no character above U+00FF');
});
