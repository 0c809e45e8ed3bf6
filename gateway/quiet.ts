/**
 * The options of a gateway that a benchmark or a fuzzer starts in its own process: loopback ports the system picks,
 * its own CA in `dataDir`, week-long certificates, no claim mode, silent logs. Callers add what they measure.
 */
import { pino } from 'pino';
import type { PolicyRule } from '../policy/index.js';
import type { GatewayOptions } from './gateway.js';

export function quietGatewayOptions(dataDir: string, policies: PolicyRule[]): GatewayOptions {
  return {
    dataDir,
    httpsPort: 0,
    mqttPort: 0,
    hosts: [],
    certLifetimeMs: 7 * 86_400_000,
    crlValidityMs: 86_400_000,
    claim: false,
    log: pino({ level: 'silent' }),
    policies,
    initialScore: 0.5,
    onDowngrade: 'filter',
    eventIntervalMs: 10_000,
  };
}
