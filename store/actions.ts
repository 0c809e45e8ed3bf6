/**
 * Operators' decisions about recommended actions (issue 13): snooze one action on one device until a time, or
 * ignore it until un-ignored. They only change what the fleet's action lists show: a snoozed or ignored action still
 * costs the device its points in the Trust Score.
 */

export interface ActionDecisionRow {
  device: string;
  /** The recommended action's id (a score factor id such as `firewall`, or `cve:CVE-2024-1234`). */
  action: string;
  kind: 'snooze' | 'ignore';
  /** Snoozes: when the action shows again (ISO). Null for ignore. */
  until: string | null;
  /** Who decided (audit identity) and when. */
  actor: string;
  time: string;
}

export interface ActionDecisionStore {
  readonly location: string;
  /** Every decision held (expired snoozes included until pruned). */
  all(): Promise<ActionDecisionRow[]>;
  /** Sets (replaces) the decision for one action on one device. */
  put(row: ActionDecisionRow): Promise<void>;
  /** Removes it; false when there was none. */
  remove(device: string, action: string): Promise<boolean>;
  close(): Promise<void>;
}
