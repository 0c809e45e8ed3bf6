/**
 * `npm run grafana`: writes the boards to grafana/dashboards/ (committed; a test checks they are current).
 * `npm run grafana -- --config wott.yaml --out DIR`: boards whose "Below X" panels follow your own policies.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { policyThresholds } from '../policy/index.js';
import { loadConfig } from '../cli/config.js';
import { DEFAULT_THRESHOLDS, renderDashboards } from './dashboards.js';

const { values } = parseArgs({ options: { config: { type: 'string' }, out: { type: 'string' } } });
// Run from dist/grafana/: the committed folder is ../../grafana/dashboards.
const out = values.out ? resolve(values.out) : fileURLToPath(new URL('../../grafana/dashboards/', import.meta.url));
let thresholds = DEFAULT_THRESHOLDS;
if (values.config) {
  const { config } = loadConfig(values.config);
  // "Below 0" would always be empty.
  const used = policyThresholds(config.policies).filter((v) => v > 0);
  if (used.length) thresholds = used;
}
mkdirSync(out, { recursive: true });
for (const [name, json] of Object.entries(renderDashboards(thresholds))) {
  writeFileSync(join(out, name), json);
  process.stdout.write(`wrote ${join(out, name)}\n`);
}
