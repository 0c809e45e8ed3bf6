/** Prometheus metrics for the gateway: one registry, served at /metrics on the HTTPS port. */
import { collectDefaultMetrics, Registry } from 'prom-client';

export function createMetrics(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'wott_process_' });
  return registry;
}
