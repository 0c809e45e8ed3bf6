/** `npm run grafana`: writes the boards to grafana/dashboards/ (committed; a test checks they are current). */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { renderDashboards } from './dashboards.js';

// Run from dist/grafana/: the committed folder is ../../grafana/dashboards.
const out = fileURLToPath(new URL('../../grafana/dashboards/', import.meta.url));

for (const [name, json] of Object.entries(renderDashboards())) {
  writeFileSync(join(out, name), json);
  process.stdout.write(`wrote ${join(out, name)}\n`);
}
