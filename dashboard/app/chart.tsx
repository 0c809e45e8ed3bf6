/**
 * The score history as a small inline SVG line chart (no chart library: a line, a time axis, 0–1 and the policy
 * thresholds as dashed lines; about 1 KB instead of uPlot's ~20 KB gzip, and no canvas, so the page's text and the
 * table below stay the accessible form of the same data).
 */
import type { HistoryPoint } from '../../protocol/fleet-api.js';

const W = 440;
const H = 190;
const PAD = { l: 34, r: 10, t: 10, b: 24 };

export function ScoreChart({ points, thresholds, label }: { points: HistoryPoint[]; thresholds: number[]; label: string }) {
  if (points.length === 0) return <p class="muted">No score history yet.</p>;
  const times = points.map((p) => Date.parse(p.time));
  const t0 = Math.min(...times);
  const t1 = Math.max(...times);
  const span = t1 - t0 || 1;
  const x = (t: number) => PAD.l + ((t - t0) / span) * (W - PAD.l - PAD.r);
  const y = (s: number) => PAD.t + (1 - s) * (H - PAD.t - PAD.b);
  // A score holds until the next one (the history has a row per change, then the current score): steps, not slopes.
  const path = points.map((p, i) => (i ? `H${x(times[i]!).toFixed(1)} V${y(p.score).toFixed(1)}` : `M${x(times[i]!).toFixed(1)},${y(p.score).toFixed(1)}`)).join(' ');
  const fmt = (t: number) => (span > 2 * 86_400_000 ? new Date(t).toLocaleDateString() : new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
  const last = points[points.length - 1]!;
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${label}: ${points.length} points from ${new Date(t0).toLocaleString()} to ${new Date(t1).toLocaleString()}, latest ${last.score.toFixed(2)}`}>
        {[0, 0.25, 0.5, 0.75, 1].map((s) => (
          <g key={s}>
            <line class="grid-line" x1={PAD.l} x2={W - PAD.r} y1={y(s)} y2={y(s)} />
            <text x={PAD.l - 4} y={y(s) + 4} text-anchor="end">
              {s.toFixed(2)}
            </text>
          </g>
        ))}
        {thresholds.map((s) => (
          <line key={`t${s}`} class="threshold" x1={PAD.l} x2={W - PAD.r} y1={y(s)} y2={y(s)} />
        ))}
        <line class="axis" x1={PAD.l} x2={W - PAD.r} y1={H - PAD.b} y2={H - PAD.b} />
        <text x={PAD.l} y={H - 6}>
          {fmt(t0)}
        </text>
        <text x={W - PAD.r} y={H - 6} text-anchor="end">
          {fmt(t1)}
        </text>
        <path class="line" d={path} />
        {points.length <= 60 ? points.map((p, i) => <circle key={i} class="dot" cx={x(times[i]!)} cy={y(p.score)} r="2.5" />) : null}
      </svg>
      <figcaption class="muted">Dashed: the policy thresholds in use.</figcaption>
    </figure>
  );
}
