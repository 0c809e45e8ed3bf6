/**
 * Overview: one section per data source. Devices by state, certificates expiring within 48 h, the score
 * distribution, devices below each policy threshold, vulnerabilities by severity and the top recommended actions
 * (GET /fleet/summary, reloaded after live changes), and a live feed of fleet events (GET /events/stream).
 */
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import type { FleetSummary } from '../../../protocol/api.js';
import { SEVERITIES, STATES } from '../contract.js';
import { call, qs } from '../api.js';
import type { FleetEvent } from '../../../protocol/fleet-events.js';
import { useDebounced, useFleetEvents, useLive } from '../live.js';
import { Failure, Section, StateBadge, useLoad, useTitle } from '../ui.js';

function Histogram({ summary }: { summary: FleetSummary }) {
  const max = Math.max(1, ...summary.scoreHistogram.map((b) => b.devices));
  return (
    <ol class="histogram" aria-label="Devices by score band">
      {summary.scoreHistogram.map((b) => (
        <li key={b.from}>
          <a class="n" href={`/devices${qs({ minScore: b.from, maxScore: b.to, sort: 'score' })}`} aria-label={`${b.devices} device${b.devices === 1 ? '' : 's'} scoring ${b.from.toFixed(1)} to ${b.to.toFixed(1)}`}>
            {b.devices}
          </a>
          <span class="col" aria-hidden="true" style={{ height: `${((b.devices / max) * 75).toFixed(1)}%` }} />
          <span class="lbl" aria-hidden="true">
            {b.from.toFixed(1)}
          </span>
        </li>
      ))}
    </ol>
  );
}

const FEED_LABEL: Record<FleetEvent['type'], string> = {
  enrolled: 'enrolled',
  renewed: 'renewed',
  claimed: 'claimed',
  quarantined: 'quarantined',
  released: 'released',
  revoked: 'revoked',
  score_drop: 'score drop',
  auth_failure: 'auth failure',
  lateral_movement: 'lateral movement',
  audit_finding: 'audit',
};

/** The fleet events (GET /events/stream), newest first; every text in it came from the API and is shown as text. */
function LiveFeed({ events, open }: { events: FleetEvent[]; open: boolean }) {
  return (
    <>
      <p class={`live ${open ? 'on' : ''}`}>{open ? 'Connected: new events appear at the top.' : 'Not connected to the event stream (reconnecting).'}</p>
      {events.length === 0 ? (
        <p class="muted">No fleet events yet: enrollments, renewals, quarantines, revocations, score drops and authentication failures show here as they happen.</p>
      ) : (
        <ol class="feed" aria-label="Fleet events, newest first" aria-live="polite">
          {events.map((e) => (
            <li key={e.seq} data-type={e.type}>
              <time dateTime={e.time} title={e.time}>
                {new Date(e.time).toLocaleTimeString()}
              </time>{' '}
              <span class={`badge ev-${e.type}`}>{FEED_LABEL[e.type] ?? e.type}</span> {e.device ? <a href={`/devices/${encodeURIComponent(e.device)}`}>{e.device}</a> : null} {e.text}
              {e.remoteAddress ? <span class="muted"> from {e.remoteAddress}</span> : null}
            </li>
          ))}
        </ol>
      )}
    </>
  );
}

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
  const [events, setEvents] = useState<FleetEvent[]>([]);
  const reload = useDebounced(summary.reload, 1000);
  // Scores move all the time in a large fleet: they refresh the summary less often than state changes do.
  const reloadForScores = useDebounced(summary.reload, 5000);
  useLive((e) => {
    if (e.type === 'score') reloadForScores();
    else if (e.type !== 'ready') reload();
  });
  const open = useFleetEvents((e) => {
    // After a reset (another gateway process) the seqs start again: the old lines would hide new ones.
    if (e.type === 'reset') return (setEvents([]), reload());
    if (e.type !== 'fleet') return;
    setEvents((list) => (list.some((x) => x.seq === e.data.seq) ? list : [e.data, ...list].slice(0, 100)));
    reload();
  });
  const data = summary.data;
  const body = (f: (d: FleetSummary) => ComponentChildren) => (summary.error ? <Failure error={summary.error} /> : data ? f(data) : <p aria-busy="true">Loading…</p>);
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
        <Section title="Score distribution" source="GET /api/v1/fleet/summary">
          {body((d) => <Histogram summary={d} />)}
        </Section>
        <Section title="Devices below each threshold" source="GET /api/v1/fleet/summary">
          {body((d) =>
            d.belowThreshold.filter((b) => b.threshold > 0).length === 0 ? (
              <p>No policy rule needs a score.</p>
            ) : (
              <ul class="plain below">
                {d.belowThreshold.filter((b) => b.threshold > 0).map((b) => (
                  <li key={`${b.action}:${b.topic}`}>
                    <a href={`/devices${qs({ below: `${b.action}:${b.topic}`, sort: 'score' })}`}>
                      <strong>{b.devices}</strong> device{b.devices === 1 ? '' : 's'}
                    </a>{' '}
                    below {b.threshold} to {b.action} <code>{b.topic}</code>
                  </li>
                ))}
              </ul>
            ),
          )}
        </Section>
        <Section title="Vulnerabilities by severity" source="GET /api/v1/fleet/summary">
          {body((d) => (
            <ul class="plain vuln-summary">
              {SEVERITIES.map((s) => (
                <li key={s}>
                  <a href={`/vulnerabilities?severity=${s}`}>
                    <span class={`badge sev-${s}`}>{s}</span> <strong>{d.vulnerabilities[s]}</strong> finding{d.vulnerabilities[s] === 1 ? '' : 's'}
                  </a>
                </li>
              ))}
            </ul>
          ))}
        </Section>
        <Section title="Top recommended actions" source="GET /api/v1/fleet/summary">
          {body((d) =>
            d.topActions.length === 0 ? (
              <p>No open recommended actions.</p>
            ) : (
              <ol class="plain top-actions">
                {d.topActions.map((a) => (
                  <li key={a.id}>
                    <a href={`/actions#action-${encodeURIComponent(a.id)}`}>{a.title}</a> — <strong>{a.devices}</strong> device{a.devices === 1 ? '' : 's'}
                  </li>
                ))}
              </ol>
            ),
          )}
        </Section>
      </div>
      <Section title="Live events" source="GET /api/v1/events/stream">
        <LiveFeed events={events} open={open} />
      </Section>
    </main>
  );
}
