/**
 * The fleet audit (GET /audit/latest): the gateway's latest scheduled run, its findings most severe first (each with
 * the affected objects, the evidence and the fix), and the checks wott could not assess, with why; and the compliance
 * report (ETSI EN 303 645, NIST IR 8259A) to download as HTML, PDF or JSON from GET /reports/compliance.
 */
import { useState } from 'preact/hooks';
import type { AuditLatest, ReportFormat } from '../../../protocol/audit.js';
import { call, download } from '../api.js';
import { Failure, Section, Time, useLoad, useTitle } from '../ui.js';

const FORMATS: Array<{ format: ReportFormat; label: string }> = [
  { format: 'pdf', label: 'PDF' },
  { format: 'html', label: 'HTML' },
  { format: 'json', label: 'JSON' },
];

/** The report's download buttons: one download at a time, its outcome said in a live region. */
function ReportDownloads() {
  const [busy, setBusy] = useState<ReportFormat>();
  const [result, setResult] = useState<{ ok: boolean; text: string }>();
  const get = async (format: ReportFormat, label: string) => {
    setBusy(format);
    setResult({ ok: true, text: `Preparing the ${label} report…` });
    try {
      setResult({ ok: true, text: `Downloaded ${await download(`/reports/compliance?format=${format}`)}` });
    } catch (err) {
      setResult({ ok: false, text: `${label} report: ${(err as Error).message}` });
    } finally {
      setBusy(undefined);
    }
  };
  return (
    <Section title="Compliance report" source="GET /api/v1/reports/compliance">
      <p>
        ETSI EN 303 645 (5.1–5.13) and the NIST IR 8259A core baseline, per provision and per device: met, not met or
        not assessable by wott, with the evidence and the fix. Built from the gateway's live evidence.
      </p>
      <div class="buttons report-downloads">
        {FORMATS.map(({ format, label }) => (
          <button type="button" key={format} data-format={format} disabled={busy !== undefined} aria-busy={busy === format} onClick={() => void get(format, label)}>
            Download {label}
          </button>
        ))}
      </div>
      <p class={result?.ok === false ? 'error report-status' : 'muted report-status'} role="status" aria-live="polite">
        {result?.text ?? ''}
      </p>
    </Section>
  );
}

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
      <ReportDownloads />
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
              <table class="findings stack">
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
                      <td data-label="Severity">
                        <span class={`badge ${SEVERITY_CLASS[f.severity] ?? 'sev-low'}`}>{f.severity}</span>
                      </td>
                      <td data-label="Finding">
                        {f.title}
                        <div class="muted">{f.objects.join(', ')}</div>
                      </td>
                      <td data-label="Evidence">
                        <ul>
                          {f.evidence.map((e, i) => (
                            <li key={i}>
                              {e.fact} <span class="muted">(<Time iso={e.observedAt} />)</span>
                            </li>
                          ))}
                        </ul>
                      </td>
                      <td data-label="Fix">
                        <code class="wrap">{f.fix}</code>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </Section>
          <Section title="Checks" source="GET /api/v1/audit/latest">
            <table class="checks stack">
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
                    <td data-label="Check">{c.title}</td>
                    <td data-label="Result">{c.status === 'findings' ? `${c.findings} finding(s)` : c.status === 'pass' ? 'pass' : 'not assessable'}</td>
                    <td class="muted" data-label="Note">{c.note ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </Section>
        </>
      ) : null}
    </main>
  );
}
