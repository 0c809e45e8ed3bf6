/**
 * `npm run bench -- <suite> [--quick] [--option value ...]`: runs one suite (or `all`) and prints ratios plus a JSON
 * line per suite. Options other than --quick take a value (`--minutes 30` or `--minutes=30`) and go to the suite.
 */
import { brokerSuite, decisionSuite } from './broker.js';
import { caSuite } from './ca.js';
import { estSuite } from './est.js';
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
import { soakSuite } from './soak.js';
import { scaleSuite } from './scale.js';

const suites: Suite[] = [caSuite, estSuite, brokerSuite, decisionSuite, scoringSuite, cveSuite, apiSuite, clusterSuite, dashboardSuite, storeSuite, credentialsSuite, auditSuite, intrusionsSuite, soakSuite, scaleSuite];

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const names: string[] = [];
  const options: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) names.push(a);
    else if (a === '--quick' || a.includes('=')) options.push(a);
    else options.push(a, args[++i] ?? '');
  }
  if (names.length === 0) {
    process.stdout.write(`usage: npm run bench -- <suite|all> [--quick] [--option value]\nsuites:\n${suites.map((s) => `  ${s.name}  ${s.description}`).join('\n')}\n`);
    process.exitCode = 2;
    return;
  }
  // `all` leaves the soak and scale out: they hold 10,000 devices (the soak for half an hour), so only by name.
  const chosen = names.includes('all') ? suites.filter((s) => s !== soakSuite && s !== scaleSuite) : names.map((n) => suites.find((s) => s.name === n) ?? n);
  for (const suite of chosen) {
    if (typeof suite === 'string') {
      process.stderr.write(`unknown suite "${suite}"; known: ${suites.map((s) => s.name).join(', ')}\n`);
      process.exitCode = 2;
      return;
    }
    print(await suite.run({ quick, args: options }));
  }
}

await main();
