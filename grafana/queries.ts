/**
 * Every InfluxQL query the boards run, in one place, over the measurements scoring writes (scoring/points.ts).
 * InfluxQL, not Flux, so the boards work on InfluxDB 1.x, 2.x (v1 compatibility + DBRP) and 3.x.
 * Grafana fills in $timeFilter, $__interval and $device.
 */
import { MEASUREMENTS } from '../scoring/points.js';

const S = `"${MEASUREMENTS.score}"`;
const B = `"${MEASUREMENTS.behaviour}"`;
const C = `"${MEASUREMENTS.cveFinding}"`;
const L = `"${MEASUREMENTS.lateralMovement}"`;
const DEVICE = `"device" =~ /^$device$/`;
const latestPerDevice = (field: string) => `SELECT last("${field}") FROM ${S} WHERE $timeFilter GROUP BY "device"`;

export const fleetQueries = {
  devices: `SELECT count("last") AS "devices" FROM (${latestPerDevice('score')})`,
  below: (threshold: number) => `SELECT count("last") AS "devices" FROM (${latestPerDevice('score')}) WHERE "last" < ${threshold}`,
  distribution: `SELECT last("score") AS "score" FROM ${S} WHERE $timeFilter GROUP BY "device"`,
  lowest: `SELECT last("score") AS "score", last("top_reason") AS "top reason" FROM ${S} WHERE $timeFilter GROUP BY "device"`,
  overTime: `SELECT mean("score") AS "mean", min("score") AS "lowest" FROM ${S} WHERE $timeFilter GROUP BY time($__interval) fill(none)`,
  expiringSoon: (seconds: number) => `SELECT count("last") AS "certificates" FROM (${latestPerDevice('cert_remaining_s')}) WHERE "last" < ${seconds}`,
  certificates: `SELECT last("cert_not_after") AS "expires" FROM ${S} WHERE $timeFilter GROUP BY "device"`,
  denials: `SELECT sum("publish_denied") AS "publish denied", sum("subscribe_denied") AS "subscribe denied" FROM ${B} WHERE "type" = 'counters' AND $timeFilter GROUP BY time($__interval) fill(0)`,
  authFailures: `SELECT count("count") AS "auth failures" FROM ${B} WHERE "type" = 'auth_failure' AND $timeFilter GROUP BY time($__interval) fill(0)`,
  lateral: `SELECT sum("count") AS "attempts" FROM ${L} WHERE $timeFilter GROUP BY time($__interval), "subject" fill(none)`,
} as const;

export const deviceQueries = {
  /** The device variable's values. */
  devices: `SHOW TAG VALUES FROM ${S} WITH KEY = "device"`,
  score: `SELECT last("score") AS "score" FROM ${S} WHERE ${DEVICE} AND $timeFilter`,
  topReason: `SELECT last("top_reason") AS "top reason" FROM ${S} WHERE ${DEVICE} AND $timeFilter`,
  scoreOverTime: `SELECT mean("score") AS "score" FROM ${S} WHERE ${DEVICE} AND $timeFilter GROUP BY time($__interval) fill(none)`,
  factors: `SELECT mean(/^f_/) FROM ${S} WHERE ${DEVICE} AND $timeFilter GROUP BY time($__interval) fill(none)`,
  events: `SELECT count("count") AS "events" FROM ${B} WHERE ${DEVICE} AND $timeFilter GROUP BY time($__interval), "type" fill(0)`,
  traffic: `SELECT sum("messages_in") AS "in", sum("messages_out") AS "out" FROM ${B} WHERE ${DEVICE} AND "type" = 'counters' AND $timeFilter GROUP BY time($__interval) fill(0)`,
  lateral: `SELECT sum("count") AS "attempts" FROM ${L} WHERE "subject" =~ /^$device$/ AND $timeFilter GROUP BY time($__interval), "reporter" fill(none)`,
  cveCounts: `SELECT last("cves") AS "findings", last("cves_high") AS "high or critical", last("cves_exposed") AS "on a listening service" FROM ${S} WHERE ${DEVICE} AND $timeFilter`,
  findings: `SELECT last("cve") AS "CVE", last("package") AS "package", last("installed") AS "installed", last("fixed") AS "fixed in", last("severity") AS "severity", last("scope") AS "scope", last("action") AS "fix" FROM ${C} WHERE ${DEVICE} AND $timeFilter GROUP BY "rank"`,
} as const;
