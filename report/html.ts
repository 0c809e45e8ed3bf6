/**
 * The compliance report as one self-contained HTML page: inline styles, no scripts, no fonts, images or anything
 * else fetched, every text from the fleet escaped (device ids are constrained, but reasons come from agents).
 * Laid out for print too (page breaks before the appendix), since the PDF is this page printed by Chromium.
 */
import type { ComplianceReport, Provision, ProvisionResult } from '../protocol/index.js';
import { provisionKey } from './compliance.js';

/** Why hand-written: five characters to replace; a template library would add a dependency for nothing else. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const e = escapeHtml;
const LABEL: Record<ProvisionResult, string> = { met: 'met', not_met: 'not met', not_assessable: 'not assessable' };
const badge = (r: ProvisionResult) => `<span class="r ${r}">${LABEL[r]}</span>`;

const STYLE = `
body{font:11pt/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d232b;margin:2em;max-width:60em}
h1{font-size:18pt;margin:0 0 .2em}h2{font-size:14pt;margin:1.6em 0 .4em;border-bottom:1px solid #ccd}h3{font-size:12pt;margin:1.2em 0 .3em}
table{border-collapse:collapse;width:100%;margin:.4em 0}th,td{border:1px solid #d5d9e0;padding:.25em .45em;text-align:left;vertical-align:top}
th{background:#f0f2f5}.r{display:inline-block;padding:0 .4em;border-radius:3px;font-weight:600;white-space:nowrap}
.met{background:#d9f2df;color:#14532d}.not_met{background:#fbdcdc;color:#7f1d1d}.not_assessable{background:#eceff3;color:#3b4452}
.critical{color:#7f1d1d;font-weight:700}.high{color:#9a3412;font-weight:600}.muted{color:#5b6573}.ev{font-size:9.5pt}
section.prov,tr{break-inside:avoid}table.appx{font-size:8.5pt}table.appx td{padding:.1em .3em}.appendix{break-before:page}
@page{size:A4;margin:15mm}`;

function trend(report: ComplianceReport, p: Provision): string {
  const prev = report.previous?.met[provisionKey(p)];
  if (prev === undefined || p.scope === 'outside') return '<span class="muted">–</span>';
  const d = p.summary.met - prev;
  return d === 0 ? 'unchanged' : d > 0 ? `+${d}` : String(d);
}

function evidenceList(items: Array<{ fact: string; observedAt: string }>): string {
  if (!items.length) return '<span class="muted">none</span>';
  return `<ul class="ev">${items.map((x) => `<li>${e(x.fact)} <span class="muted">(observed ${e(x.observedAt)})</span></li>`).join('')}</ul>`;
}

export function renderComplianceHtml(report: ComplianceReport): string {
  const rows = report.provisions
    .map(
      (p) =>
        `<tr><td>${e(p.standard)} <b>${e(p.id)}</b></td><td>${e(p.title)}</td><td>${badge(p.result)}</td>` +
        (p.scope === 'outside' ? `<td colspan="3" class="muted">not assessable by wott</td>` : `<td>${p.summary.met}</td><td>${p.summary.notMet}</td><td>${p.summary.notAssessable}</td>`) +
        `<td>${trend(report, p)}</td></tr>`,
    )
    .join('\n');
  const details = report.provisions
    .map((p) => {
      const failing = p.devices.filter((d) => d.result === 'not_met');
      return (
        `<section class="prov"><h3>${e(p.standard)} ${e(p.id)} — ${e(p.title)} ${badge(p.result)}</h3>` +
        `<p>${p.scope === 'outside' ? '<b>Not assessable by wott:</b> ' : '<b>How wott judges it:</b> '}${e(p.why)}</p>` +
        (p.fleetEvidence.length ? `<p><b>Fleet evidence</b></p>${evidenceList(p.fleetEvidence)}` : '') +
        (failing.length
          ? `<table><tr><th>device not meeting it</th><th>evidence</th><th>fix</th></tr>${failing.map((d) => `<tr><td>${e(d.device)}</td><td>${evidenceList(d.evidence)}</td><td>${e(d.fix ?? '')}</td></tr>`).join('')}</table>`
          : '') +
        '</section>'
      );
    })
    .join('\n');
  const findings = report.audit.findings
    .map((f) => `<tr><td class="${f.severity}">${e(f.severity)}</td><td>${e(f.title)}<div class="muted ev">${e(f.objects.join(', '))}</div></td><td>${evidenceList(f.evidence)}</td><td>${e(f.fix)}</td></tr>`)
    .join('\n');
  const notAssessable = report.audit.checks.filter((c) => c.status === 'not_assessable');
  // Per provision, its devices by id: the appendix looks each device up in each provision (a find would be quadratic).
  const byDevice = report.provisions.filter((p) => p.scope === 'device').map((p) => ({ p, of: new Map(p.devices.map((d) => [d.device, d])) }));
  const deviceIds = [...new Set(report.provisions.flatMap((p) => p.devices.map((d) => d.device)))].sort();
  const appendix = deviceIds
    .map((id) => {
      const lines = byDevice
        .map(({ p, of }) => {
          const d = of.get(id);
          // One line of evidence per row: the appendix is for looking a device up, the sections above explain.
          const facts = d ? d.evidence.map((x) => `${e(x.fact)} <span class="muted">(${e(x.observedAt)})</span>`).join('; ') : '';
          return d ? `<tr><td>${e(p.standard.replace('ETSI EN 303 645', 'ETSI').replace('NIST IR 8259A', 'NIST'))} ${e(p.id)}</td><td>${badge(d.result)}</td><td>${facts}</td><td>${e(d.fix ?? '')}</td></tr>` : '';
        })
        .join('');
      return `<h3>${e(id)}</h3><table class="appx"><tr><th>provision</th><th>result</th><th>evidence</th><th>fix</th></tr>${lines}</table>`;
    })
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>wott compliance report ${e(report.generatedAt)}</title><style>${STYLE}</style></head>
<body>
<h1>Fleet compliance report</h1>
<p class="muted">Generated ${e(report.generatedAt)} from live evidence · ${report.gateway.devices} device(s) · CA root ${e(report.gateway.rootFingerprint)}${report.previous ? ` · trend against the report of ${e(report.previous.generatedAt)}` : ' · first report: no trend yet'}</p>
<h2>Summary</h2>
<table><tr><th>provision</th><th>title</th><th>fleet</th><th>devices met</th><th>not met</th><th>not assessable</th><th>trend (met)</th></tr>
${rows}
</table>
<p class="muted">"Not assessable by wott" means wott holds no evidence for the provision: it is judged elsewhere (the manufacturer's processes, the device's firmware).</p>
<h2>Provisions</h2>
${details}
<h2>Audit findings</h2>
<p class="muted">Audit run ${e(report.audit.id)} (${e(report.audit.source)}): ${report.audit.findings.length} finding(s).</p>
${findings ? `<table><tr><th>severity</th><th>finding</th><th>evidence</th><th>fix</th></tr>${findings}</table>` : '<p>No findings.</p>'}
${notAssessable.length ? `<p><b>Checks not assessable here:</b></p><ul>${notAssessable.map((c) => `<li>${e(c.title)}: ${e(c.note ?? '')}</li>`).join('')}</ul>` : ''}
<h2 class="appendix">Appendix: per device</h2>
${appendix || '<p>No devices.</p>'}
</body></html>
`;
}
