/**
 * The README and docs/ link to each other and to files of the repository (the screenshot, examples/, api/openapi.json):
 * every relative link must name a file that exists, and every #anchor a heading of that file (GitHub's slugs), so
 * moving material between pages cannot leave a dead link behind.
 */
import t from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
// Its child processes run without tap's coverage hook (see helpers.ts).
import '../helpers.js';

/** GitHub's heading anchor: lowercase, punctuation dropped (but - and _), spaces to dashes. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  let fence = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fence = !fence;
    const m = !fence && /^#{1,6}\s+(.*)$/.exec(line);
    if (m) out.add(slug(m[1]!));
  }
  return out;
}

/** Links outside code: [text](target) and ![alt](target). */
function links(markdown: string): string[] {
  const prose = markdown.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');
  return [...prose.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!);
}

const pages = ['README.md', ...readdirSync('docs').filter((f) => f.endsWith('.md')).map((f) => join('docs', f)), 'examples/cve/README.md'];

t.test('every relative link in the README and docs/ resolves', async (t) => {
  let checked = 0;
  for (const page of pages) {
    const text = readFileSync(page, 'utf8');
    for (const target of links(text)) {
      if (/^[a-z]+:/i.test(target)) continue; // http(s), mailto
      const [path, anchor] = target.split('#') as [string, string | undefined];
      const file = path === '' ? resolve(page) : resolve(dirname(page), path);
      t.ok(existsSync(file), `${page}: ${target} exists`);
      if (anchor && existsSync(file) && file.endsWith('.md')) t.ok(anchors(readFileSync(file, 'utf8')).has(anchor), `${page}: #${anchor} is a heading of ${path || page}`);
      checked++;
    }
  }
  t.ok(checked > 30, `${checked} links checked`);
});

t.test('the README links every page of docs/', async (t) => {
  const readme = readFileSync('README.md', 'utf8');
  for (const f of readdirSync('docs').filter((f) => f.endsWith('.md') && f !== 'README.md')) t.match(readme, `(docs/${f}`, `docs/${f}`);
});

t.test('slugs as GitHub makes them', async (t) => {
  t.equal(slug('Limits (what one MQTT client may consume)'), 'limits-what-one-mqtt-client-may-consume');
  t.equal(slug('Private files, key encryption, backups'), 'private-files-key-encryption-backups');
  t.equal(slug('Revocation: CRL and OCSP'), 'revocation-crl-and-ocsp');
  t.equal(slug('Configuration (`wott.yaml`)'), 'configuration-wottyaml');
});
