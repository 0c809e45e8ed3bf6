/**
 * Who did something, as the audit log records it: `local:{OS user}` for the CLI on the gateway's host,
 * `signal:SIGHUP`, and certificate or session identities for API callers. A bounded, printable alphabet, since
 * actors are printed, filtered on and sometimes read back from files.
 */
export const ACTOR_PATTERN = /^[a-z][a-z-]{0,15}:[A-Za-z0-9._@:+-]{1,120}$/;

export function isActorName(value: unknown): value is string {
  return typeof value === 'string' && ACTOR_PATTERN.test(value);
}
