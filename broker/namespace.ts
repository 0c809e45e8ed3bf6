/**
 * Who may use the protected wott/ namespace. These rules stand above the score policies: a device may always
 * publish its own telemetry and its own peer reports (so a low score can recover), and nothing else in wott/;
 * only the scoring identity publishes scores (and lateral-movement notices); only the broker itself publishes behaviour events.
 */
import { isProtocolTopic, parseTopic, topicFilters } from '../protocol/index.js';
import type { Identity } from './identity.js';

export type NamespaceVerdict = { applies: false } | { applies: true; allowed: boolean; reason: string };

const NOT_PROTOCOL: NamespaceVerdict = { applies: false };

export function namespacePublish(who: Identity, topic: string): NamespaceVerdict {
  if (!isProtocolTopic(topic)) return NOT_PROTOCOL;
  const parsed = parseTopic(topic);
  const deny = (reason: string): NamespaceVerdict => ({ applies: true, allowed: false, reason });
  if (!parsed) return deny(`"${topic}" is not a wott/v1 topic anyone may publish`);
  if (who.kind === 'service') {
    if (parsed.kind === 'scores' && who.role === 'scoring') return { applies: true, allowed: true, reason: 'the scoring identity publishes scores' };
    if (parsed.kind === 'lateral' && who.role === 'scoring') return { applies: true, allowed: true, reason: 'the scoring identity publishes lateral-movement notices' };
    if (parsed.kind === 'events' && who.role === 'broker') return { applies: true, allowed: true, reason: 'a broker identity publishes behaviour events' };
    return deny(`role ${who.role} may not publish ${parsed.kind}`);
  }
  switch (parsed.kind) {
    case 'telemetry':
      return parsed.device === who.id
        ? { applies: true, allowed: true, reason: 'a device publishes its own telemetry' }
        : deny(`device "${who.id}" may not publish telemetry for "${parsed.device}"`);
    case 'reports':
      return parsed.reporter === who.id && parsed.subject !== who.id
        ? { applies: true, allowed: true, reason: 'a device publishes its own peer reports' }
        : deny(`device "${who.id}" may only report as itself about another device`);
    case 'scores':
      return deny('only the scoring identity may publish scores');
    case 'events':
      return deny('only the broker publishes behaviour events');
    case 'lateral':
      return deny('only the scoring identity publishes lateral-movement notices');
    case 'credentials':
      return deny('only the gateway itself publishes credentials');
  }
}

/** Subscriptions in wott/: services see the stream they need; a device sees only its own score and events. */
export function namespaceSubscribe(who: Identity, filter: string): NamespaceVerdict {
  const touches = isProtocolTopic(filter) || filter === '#' || filter.startsWith('+') || filter === topicFilters.protectedNamespace;
  if (!touches) return NOT_PROTOCOL;
  if (who.kind === 'service' && parseTopic(filter)?.kind === 'credentials') {
    return { applies: true, allowed: false, reason: 'credentials are for their device only' };
  }
  if (who.kind === 'service' && (who.role === 'scoring' || who.role === 'admin' || who.role === 'broker')) {
    return isProtocolTopic(filter) ? { applies: true, allowed: true, reason: `role ${who.role} reads the wott/ namespace` } : NOT_PROTOCOL;
  }
  if (!isProtocolTopic(filter)) return NOT_PROTOCOL; // '#', '+/...': policies decide; deliveries from wott/ are filtered in forward
  const parsed = parseTopic(filter);
  if (parsed && (parsed.kind === 'scores' || parsed.kind === 'events' || parsed.kind === 'credentials') && parsed.device === who.id) {
    return { applies: true, allowed: true, reason: `device "${who.id}" reads its own ${parsed.kind}` };
  }
  return { applies: true, allowed: false, reason: `device "${who.id}" may not subscribe to "${filter}" in the wott/ namespace` };
}

/** Per-delivery check of wott/ messages (e.g. to a '#' subscriber): a device only ever receives its own score/events. */
export function namespaceForward(who: Identity, topic: string): NamespaceVerdict {
  if (!isProtocolTopic(topic)) return NOT_PROTOCOL;
  const parsed = parseTopic(topic);
  // Credentials (JWEs to one device) reach that device only: not even a service's wott/# sees them.
  if (parsed?.kind === 'credentials') return who.kind === 'device' && parsed.device === who.id ? { applies: true, allowed: true, reason: 'own' } : { applies: true, allowed: false, reason: 'private to another party' };
  if (who.kind === 'service') return { applies: true, allowed: true, reason: 'service' };
  const own = parsed && (parsed.kind === 'scores' || parsed.kind === 'events') && parsed.device === who.id;
  return { applies: true, allowed: Boolean(own), reason: own ? 'own' : 'private to another party' };
}
