/** `npm run bench -- <suite> [--quick]`: runs one suite (or `all`) and prints ratios plus a JSON line per suite. */
import { brokerSuite, decisionSuite } from './broker.js';
import { caSuite } from './ca.js';
import { print, type Suite } from './harness.js';
import { scoringSuite } from './scoring.js';
import { cveSuite } from './cve.js';
import { apiSuite } from './api.js';
import { clusterSuite } from './cluster.js';
import { dashboardSuite } from './dashboard.js';
import { storeSuite } from './store.js';

import { credentialsSuite } from './credentials.js';
import { auditSuite } from './audit.js';
import { intrusionsSuite } from './intrusions.js';

const suites: Suite[] = [caSuite, brokerSuite, decisionSuite, scoringSuite, cveSuite, apiSuite, clusterSuite, dashboardSuite, storeSuite, credentialsSuite, auditSuite, intrusionsSuite];

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const names = args.filter((a) => !a.startsWith('--'));
  if (names.length === 0) {
    process.stdout.write(`usage: npm run bench -- <suite|all> [--quick]\nsuites:\n${suites.map((s) => `  ${s.name}  ${s.description}`).join('\n')}\n`);
    process.exitCode = 2;
    return;
  }
  const chosen = names.includes('all') ? suites : names.map((n) => suites.find((s) => s.name === n) ?? n);
  for (const suite of chosen) {
    if (typeof suite === 'string') {
      process.stderr.write(`unknown suite "${suite}"; known: ${suites.map((s) => s.name).join(', ')}\n`);
      process.exitCode = 2;
      return;
    }
    print(await suite.run({ quick }));
  }
}

await main();
