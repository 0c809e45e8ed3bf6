/**
 * The fleet audit (GET /audit/latest): the gateway's latest scheduled run, its findings most severe first (each with
 * the affected objects, the evidence and the fix), and the checks wott could not assess, with why. The compliance
 * report itself is made with `wott report compliance` (docs/audit.md).
 */
import type { AuditLatest } from '../../../protocol/audit.js';
import { call } from '../api.js';
import { Failure, Section, Time, useLoad, useTitle } from '../ui.js';

const SEVERITY_CLASS: Record<string, string> = { critical: 'sev-critical', high: 'sev-high', medium: 'sev-medium', low: 'sev-low', info: 'sev-low' };

export function CompliancePage() {
  useTitle('Fleet audit');
  const latest = useLoad(() => call<AuditLatest>('GET', '/audit/latest'), 'audit');
  const run = latest.data?.run;
  return (
    <main id="main">
      <h1>Fleet audit</h1>
      {latest.error ? <Failure error={latest.error} /> : null}
      {!latest.data && !latest.error ? <p aria-busy="true">Loading…</p> : null}
      {latest.data && !run ? (
        <p class="muted">
          No audit has run yet{latest.data.nextRunAt ? <> — the next starts <Time iso={latest.data.nextRunAt} /></> : null}.
        </p>
      ) : null}
      {run ? (
        <>
          <p class="muted audit-summary">
            Run <Time iso={run.finishedAt} /> over {run.devices} device(s): {run.findings.length} finding(s)
            {Object.entries(run.counts)
              .filter(([, n]) => n > 0)
              .map(([s, n]) => ` · ${n} ${s}`)
              .join('')}
            {latest.data?.nextRunAt ? (
              <>
                {' '}
                · next <Time iso={latest.data.nextRunAt} />
              </>
            ) : null}
          </p>
          <Section title="Findings" source="GET /api/v1/audit/latest">
            {run.findings.length === 0 ? (
              <p>No findings.</p>
            ) : (
              <table class="findings">
                <thead>
                  <tr>
                    <th>Severity</th>
                    <th>Finding</th>
                    <th>Evidence</th>
                    <th>Fix</th>
                  </tr>
                </thead>
                <tbody>
                  {run.findings.map((f) => (
                    <tr key={`${f.check}|${f.objects.join(',')}`} data-check={f.check}>
                      <td>
                        <span class={`badge ${SEVERITY_CLASS[f.severity] ?? 'sev-low'}`}>{f.severity}</span>
                      </td>
                      <td>
                        {f.title}
                        <div class="muted">{f.objects.join(', ')}</div>
                      </td>
                      <td>
                        <ul>
                          {f.evidence.map((e, i) => (
                            <li key={i}>
                              {e.fact} <span class="muted">(<Time iso={e.observedAt} />)</span>
                            </li>
                          ))}
                        </ul>
                      </td>
                      <td>
                        <code>{f.fix}</code>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </Section>
          <Section title="Checks" source="GET /api/v1/audit/latest">
            <table class="checks">
              <thead>
                <tr>
                  <th>Check</th>
                  <th>Result</th>
                  <th>Note</th>
                </tr>
              </thead>
              <tbody>
                {run.checks.map((c) => (
                  <tr key={c.id}>
                    <td>{c.title}</td>
                    <td>{c.status === 'findings' ? `${c.findings} finding(s)` : c.status === 'pass' ? 'pass' : 'not assessable'}</td>
                    <td class="muted">{c.note ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </Section>
          <p class="muted">
            The compliance report (ETSI EN 303 645, NIST IR 8259A) from the same evidence: <code>wott report compliance --format pdf --out report.pdf</code>.
          </p>
        </>
      ) : null}
    </main>
  );
}
