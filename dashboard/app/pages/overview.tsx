/**
 * Overview: one section per data source. Today: devices by state and certificates expiring within 48 h
 * (GET /fleet/summary). The score histogram, devices below each threshold, vulnerabilities, top actions and the
 * live feed come with their routes (fleet summary extras, the trust stream) as sections of their own.
 */
import type { FleetSummary } from '../../../protocol/api.js';
import { STATES } from '../contract.js';
import { call } from '../api.js';
import { Failure, Section, StateBadge, useLoad, useTitle } from '../ui.js';

function ByState({ summary }: { summary: FleetSummary }) {
  const { total, byState } = summary.devices;
  return (
    <>
      <p class="big">
        <span class="number">{total}</span> device{total === 1 ? '' : 's'}
      </p>
      <ul class="bars" aria-label="Devices by state">
        {STATES.map((state) => {
          const n = byState[state] ?? 0;
          const share = total ? n / total : 0;
          return (
            <li key={state}>
              <a href={`/devices?state=${state}`} class="bar-label">
                <StateBadge state={state} /> <span class="count">{n}</span>
                <span class="visually-hidden"> devices {state}</span>
              </a>
              <span class="bar" aria-hidden="true">
                <span class={`fill state-${state}`} style={{ width: `${(share * 100).toFixed(1)}%` }} />
              </span>
            </li>
          );
        })}
      </ul>
    </>
  );
}

export function OverviewPage() {
  useTitle('Overview');
  const summary = useLoad(() => call<FleetSummary>('GET', '/fleet/summary'), 'summary');
  return (
    <main id="main">
      <h1>Fleet overview</h1>
      <div class="grid">
        <Section title="Devices by state" source="GET /api/v1/fleet/summary">
          {summary.error ? <Failure error={summary.error} /> : summary.data ? <ByState summary={summary.data} /> : <p aria-busy="true">Loading…</p>}
        </Section>
        <Section title="Certificates expiring within 48 h" source="GET /api/v1/fleet/summary">
          {summary.error ? (
            <Failure error={summary.error} />
          ) : summary.data ? (
            <>
              <p class="big">
                <span class={`number ${summary.data.certificatesExpiringWithin48h ? 'soon' : ''}`}>{summary.data.certificatesExpiringWithin48h}</span> certificate
                {summary.data.certificatesExpiringWithin48h === 1 ? '' : 's'}
              </p>
              <p>
                Agents renew on their own at two thirds of the lifetime; a certificate this close to expiry usually means a device that has been offline.{' '}
                <a href="/devices?sort=certificateExpiry&order=asc">Devices by certificate expiry</a>
              </p>
            </>
          ) : (
            <p aria-busy="true">Loading…</p>
          )}
        </Section>
      </div>
    </main>
  );
}
