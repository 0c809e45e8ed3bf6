/** `npm run schema`: rewrites protocol/compliance-report.schema.json from the zod schema (commit the result; a test checks drift). */
import { writeFileSync } from 'node:fs';
import { complianceReportJsonSchema } from '../protocol/index.js';

const target = new URL('../../protocol/compliance-report.schema.json', import.meta.url);
writeFileSync(target, JSON.stringify(complianceReportJsonSchema(), null, 2) + '\n');
process.stdout.write(`wrote ${target.pathname}\n`);
