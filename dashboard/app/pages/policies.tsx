/** Policies (GET /policies): each topic rule, its thresholds and how many devices pass now; and an "explain" form (POST /policies/explain). */
import { useState } from 'preact/hooks';
import type { ExplainResult, PolicyList } from '../../../protocol/fleet-api.js';
import { call, qs } from '../api.js';
import { Table } from '../table.js';
import { Failure, Section, useLoad, useTitle } from '../ui.js';

function Threshold({ value, passing, total, rule }: { value: number | null; passing: number; total: number; rule: string }) {
  if (value === null) return <span class="muted">denied</span>;
  return (
    <>
      ≥ {value} <span class="muted">— </span>
      {value > 0 && passing < total ? <a href={`/devices${qs({ below: rule, sort: 'score' })}`}>{passing} of {total} pass</a> : <>{passing} of {total} pass</>}
    </>
  );
}

function Explain() {
  const [device, setDevice] = useState('');
  const [topic, setTopic] = useState('');
  const [action, setAction] = useState<'publish' | 'subscribe'>('publish');
  const [result, setResult] = useState<ExplainResult>();
  const [error, setError] = useState<unknown>();
  return (
    <>
      <form
        class="filters explain"
        onSubmit={(e) => {
          e.preventDefault();
          setError(undefined);
          call<ExplainResult>('POST', '/policies/explain', { device: device.trim(), topic, action }).then(
            (r) => {
              setResult(r);
            },
            (err: unknown) => {
              setResult(undefined);
              setError(err);
            },
          );
        }}
      >
        <label>
          Device
          <input name="device" required maxLength={63} value={device} onInput={(e) => setDevice(e.currentTarget.value)} />
        </label>
        <label>
          Topic
          <input name="topic" required maxLength={1024} value={topic} onInput={(e) => setTopic(e.currentTarget.value)} />
        </label>
        <label>
          Action
          <select name="action" value={action} onChange={(e) => setAction(e.currentTarget.value as 'publish' | 'subscribe')}>
            <option value="publish">publish</option>
            <option value="subscribe">subscribe</option>
          </select>
        </label>
        <button type="submit" class="primary">
          Explain
        </button>
      </form>
      <div class="explain-result" role="status">
        {error ? <Failure error={error} /> : null}
        {result ? (
          <p>
            <span class={result.allowed ? 'allowed' : 'denied'}>{result.allowed ? 'Allowed' : 'Denied'}</span>: {result.reason}{' '}
            <span class="muted">
              (score {result.score.toFixed(2)}
              {result.state ? `, ${result.state}` : ''}
              {result.rule ? `, rule ${result.rule}` : ''}
              {result.threshold !== null ? `, threshold ${result.threshold}` : ''})
            </span>
          </p>
        ) : null}
      </div>
    </>
  );
}

export function PoliciesPage() {
  useTitle('Policies');
  const list = useLoad(() => call<PolicyList>('GET', '/policies'), 'policies');
  const total = list.data?.devices ?? 0;
  return (
    <main id="main">
      <h1>Policies</h1>
      <Section title="Topic rules" source="GET /api/v1/policies">
        {list.error ? <Failure error={list.error} /> : null}
        {list.data ? (
          <Table
            class="policies"
            caption="Policy rules, first match wins"
            rows={list.data.items}
            rowKey={(p) => p.topic}
            columns={[
              { key: 'topic', label: 'Topic', rowHeader: true, cell: (p) => <code>{p.topic}</code> },
              { key: 'publish', label: 'Publish', cell: (p) => <Threshold value={p.publish} passing={p.passing.publish} total={total} rule={`publish:${p.topic}`} /> },
              { key: 'subscribe', label: 'Subscribe', cell: (p) => <Threshold value={p.subscribe} passing={p.passing.subscribe} total={total} rule={`subscribe:${p.topic}`} /> },
            ]}
          />
        ) : list.loading ? (
          <p aria-busy="true">Loading…</p>
        ) : null}
        <p class="muted">{total} devices in the fleet. A rule's topic may hold {'{device}'} for the device's own id.</p>
      </Section>
      <Section title="Explain a decision" source="POST /api/v1/policies/explain">
        <p>What the broker would decide now for a device, a topic and an action, and why.</p>
        <Explain />
      </Section>
    </main>
  );
}
