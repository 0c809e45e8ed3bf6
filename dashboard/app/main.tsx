/**
 * The wott fleet dashboard: a Preact single-page app on the HTTPS API only. The shell asks GET /api/v1/whoami; with
 * no session it shows how to get a login link (and nothing about the fleet); with one it shows the navigation (by
 * role) and the page the URL names (preact-iso's router: real URLs, deep links, the back button).
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { LocationProvider, Route, Router, useLocation } from 'preact-iso';
import type { Whoami } from '../../protocol/api.js';
import { DASHBOARD_PAGES } from '../pages.js';
import { ApiError, call, setSession } from './api.js';
import { ActionsPage } from './pages/actions.js';
import { AuditPage } from './pages/audit.js';
import { CredentialsPage } from './pages/credentials.js';
import { DevicePage } from './pages/device.js';
import { DevicesPage } from './pages/devices.js';
import { EnrollPage } from './pages/enroll.js';
import { OverviewPage } from './pages/overview.js';
import { PoliciesPage } from './pages/policies.js';
import { VulnerabilitiesPage } from './pages/vulnerabilities.js';
import { OperatorsPage } from './pages/operators.js';
import { CompliancePage } from './pages/compliance.js';
import { can, Failure } from './ui.js';
import './style.css';

type Auth = { state: 'loading' } | { state: 'out'; reason?: string } | { state: 'in'; who: Whoami } | { state: 'error'; error: unknown };

export function SignIn({ reason }: { reason?: string | undefined }) {
  return (
    <main id="main" class="signin">
      <h1>wott fleet dashboard</h1>
      {reason ? <p class="note">{reason}</p> : null}
      <p>This browser is not signed in. Sign in with a one-time link: on the gateway's host, run</p>
      <pre tabIndex={0}>npx wott operator login --role operator</pre>
      <p>
        (<code>--role viewer</code> to read only, <code>--role admin</code> to also revoke and manage sessions) and open the link it prints in this
        browser. The link works once, within 10 minutes.
      </p>
    </main>
  );
}

const NAV: Array<{ href: string; label: string; least: 'viewer' | 'operator' | 'admin' }> = [
  { href: DASHBOARD_PAGES.overview, label: 'Overview', least: 'viewer' },
  { href: DASHBOARD_PAGES.devices, label: 'Devices', least: 'viewer' },
  { href: DASHBOARD_PAGES.actions, label: 'Actions', least: 'viewer' },
  { href: DASHBOARD_PAGES.vulnerabilities, label: 'Vulnerabilities', least: 'viewer' },
  { href: DASHBOARD_PAGES.policies, label: 'Policies', least: 'viewer' },
  { href: DASHBOARD_PAGES.credentials, label: 'Credentials', least: 'viewer' },
  { href: DASHBOARD_PAGES.enroll, label: 'Enroll', least: 'operator' },
  { href: DASHBOARD_PAGES.audit, label: 'Audit log', least: 'viewer' },
  { href: DASHBOARD_PAGES.compliance, label: 'Compliance', least: 'viewer' },
  { href: DASHBOARD_PAGES.operators, label: 'Operators', least: 'admin' },
];

function Nav({ who, onSignOut }: { who: Whoami; onSignOut: () => void }) {
  const { path } = useLocation();
  const current = (href: string) =>
    href === '/' ? path === '/' : path === href || path.startsWith(`${href}/`) || (href === DASHBOARD_PAGES.operators && path === DASHBOARD_PAGES.sessions);
  return (
    <header class="top">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <span class="brand">wott</span>
      <nav aria-label="Pages">
        <ul>
          {NAV.filter((n) => can(who.role, n.least)).map((n) => (
            <li key={n.href}>
              <a href={n.href} aria-current={current(n.href) ? 'page' : undefined}>
                {n.label}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <span class="who">
        <span title={who.identity}>
          {who.name} <span class={`badge role-${who.role}`}>{who.role}</span>
        </span>
        {who.via === 'session' ? (
          <button type="button" onClick={onSignOut}>
            Sign out
          </button>
        ) : null}
      </span>
    </header>
  );
}

function NotFound() {
  return (
    <main id="main">
      <h1>Not found</h1>
      <p>
        No page here. <a href="/">Go to the overview</a>.
      </p>
    </main>
  );
}

function App() {
  const [auth, setAuth] = useState<Auth>({ state: 'loading' });
  useEffect(() => {
    const signedOut = () => {
      setSession(undefined);
      setAuth({ state: 'out', reason: 'Your session has ended or expired.' });
    };
    call<Whoami>('GET', '/whoami').then(
      (who) => {
        setSession(who, signedOut);
        setAuth({ state: 'in', who });
      },
      (error: unknown) => {
        if (error instanceof ApiError && error.status === 401) setAuth({ state: 'out' });
        else setAuth({ state: 'error', error });
      },
    );
  }, []);
  if (auth.state === 'loading') return <p class="boot">Loading…</p>;
  if (auth.state === 'out') return <SignIn reason={auth.reason} />;
  if (auth.state === 'error') {
    return (
      <main id="main">
        <h1>wott fleet dashboard</h1>
        <Failure error={auth.error} />
      </main>
    );
  }
  const { who } = auth;
  if (who.role === 'service') return <SignIn reason="Service certificates cannot use the dashboard: sign in as an operator." />;
  const signOut = () => {
    call('POST', '/logout').finally(() => {
      setSession(undefined);
      setAuth({ state: 'out', reason: 'Signed out.' });
    });
  };
  return (
    <LocationProvider>
      <Nav who={who} onSignOut={signOut} />
      <Router>
        <Route path={DASHBOARD_PAGES.overview} component={OverviewPage} />
        <Route path={DASHBOARD_PAGES.devices} component={() => <DevicesPage who={who} />} />
        <Route path={DASHBOARD_PAGES.device} component={(p: { id: string }) => <DevicePage id={p.id} who={who} />} />
        <Route path={DASHBOARD_PAGES.enroll} component={() => <EnrollPage who={who} />} />
        <Route path={DASHBOARD_PAGES.actions} component={() => <ActionsPage who={who} />} />
        <Route path={DASHBOARD_PAGES.vulnerabilities} component={VulnerabilitiesPage} />
        <Route path={DASHBOARD_PAGES.policies} component={PoliciesPage} />
        <Route path={DASHBOARD_PAGES.credentials} component={() => <CredentialsPage who={who} />} />
        <Route path={DASHBOARD_PAGES.audit} component={AuditPage} />
        <Route path={DASHBOARD_PAGES.compliance} component={CompliancePage} />
        <Route path={DASHBOARD_PAGES.operators} component={() => <OperatorsPage who={who} />} />
        {/* The page's earlier address: links to it keep working. */}
        <Route path={DASHBOARD_PAGES.sessions} component={() => <OperatorsPage who={who} />} />
        <Route default component={NotFound} />
      </Router>
    </LocationProvider>
  );
}

render(<App />, document.getElementById('app')!);
