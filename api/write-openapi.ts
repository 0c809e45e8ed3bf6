/** `npm run openapi`: rewrites api/openapi.json from the route table (commit the result). */
import { writeFileSync } from 'node:fs';
import { openApiText } from './openapi.js';

const target = new URL('../../api/openapi.json', import.meta.url);
writeFileSync(target, openApiText());
process.stdout.write(`wrote ${target.pathname}\n`);
