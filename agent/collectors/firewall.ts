/** Firewall: live nftables / iptables-save output when given, else the boot-time config files. */
import { readText, under } from './fs.js';

export interface FirewallState {
  tool: 'nftables' | 'iptables' | 'none';
  rules: number;
  defaultInputPolicy: 'accept' | 'drop' | 'unknown';
}

export interface FirewallInputs {
  nftRuleset?: string;
  iptablesSave?: string;
}

/** Removes a `#` comment that is not inside a double-quoted string. */
function stripComment(line: string): string {
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '"') quoted = !quoted;
    else if (c === '#' && !quoted) return line.slice(0, i);
  }
  return line;
}

function braceDelta(line: string): number {
  let d = 0;
  let quoted = false;
  for (const c of line) {
    if (c === '"') quoted = !quoted;
    else if (!quoted && c === '{') d++;
    else if (!quoted && c === '}') d--;
  }
  return d;
}

/** Families whose input hook filters traffic to the host. */
const HOST_FAMILIES = new Set(['ip', 'ip6', 'inet']);

export interface NftSummary {
  tables: number;
  rules: number;
  defaultInputPolicy: FirewallState['defaultInputPolicy'];
}

/** Splits a line on `;` outside double quotes. */
function statements(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const c of line) {
    if (c === '"') quoted = !quoted;
    if (c === ';' && !quoted) {
      out.push(cur.trim());
      cur = '';
    } else cur += c;
  }
  out.push(cur.trim());
  return out.filter((x) => x !== '');
}

const DECLARATION = /^(type|policy|priority|comment|devices|device)\b/;

interface ChainState {
  hook?: string;
  policy?: string;
}

/** Records the base-chain declarations among statements; returns how many statements are rules. */
function chainStatements(chain: ChainState, parts: string[]): number {
  let rules = 0;
  for (const part of parts) {
    const hook = /\btype\s+\w+\s+hook\s+(\w+)/.exec(part);
    if (hook) chain.hook = hook[1];
    const policy = /(?:^|\s)policy\s+(\w+)/.exec(part);
    if (policy) chain.policy = policy[1];
    if (!DECLARATION.test(part) && !part.startsWith('}')) rules++;
  }
  return rules;
}

/**
 * Summarises nft ruleset text (`nft list ruleset` or an nftables.conf, one statement per line as nft writes
 * them): rules are the statements directly inside chain blocks; the input policy is drop when any host
 * (ip/ip6/inet) input base chain drops by default, since a packet must pass every base chain on the hook.
 */
export function parseNft(text: string): NftSummary {
  let tables = 0;
  let rules = 0;
  let inputDrop = false;
  const stack: { kind: 'table' | 'chain' | 'other'; chain?: ChainState }[] = [];
  let family: string | undefined;
  const finish = (chain: ChainState, fam: string | undefined) => {
    if (chain.hook === 'input' && chain.policy === 'drop' && fam !== undefined && HOST_FAMILIES.has(fam)) inputDrop = true;
  };
  for (const raw of text.split('\n')) {
    const line = stripComment(raw).trim();
    if (!line) continue;
    const top = stack[stack.length - 1];
    const delta = braceDelta(line);
    const tableMatch = /^(?:add\s+|create\s+)?table\s+(?:(ip|ip6|inet|arp|bridge|netdev)\s+)?\S+\s*\{/.exec(line);
    const chainHead = /^(?:(?:add|create)\s+chain\s+(ip|ip6|inet|arp|bridge|netdev)?|chain\s)/.exec(line);
    const chainBody = chainHead && line.includes('{') ? line.slice(line.indexOf('{') + 1).replace(/\}\s*;?\s*$/, '') : undefined;
    if (stack.length === 0) {
      // Flat syntax: "add rule inet filter input ...", "add chain inet filter input { type filter hook input ... }".
      if (/^(?:add|insert)\s+rule\s/.test(line)) rules++;
      if (chainBody !== undefined && delta === 0) {
        const chain: ChainState = {};
        chainStatements(chain, statements(chainBody));
        finish(chain, chainHead?.[1] ?? 'ip');
      }
    } else if (top?.kind === 'table' && chainBody !== undefined && delta === 0) {
      // A whole chain on one line.
      const chain: ChainState = {};
      rules += chainStatements(chain, statements(chainBody));
      finish(chain, family);
    } else if (top?.kind === 'chain' && top.chain) {
      if (chainStatements(top.chain, statements(line)) > 0 && !line.startsWith('}')) rules++;
    }
    if (delta > 0) {
      if (tableMatch && stack.length === 0) {
        tables++;
        family = tableMatch[1] ?? 'ip'; // nft's default family is ip
        stack.push({ kind: 'table' });
      } else if (chainBody !== undefined && top?.kind === 'table') {
        const chain: ChainState = {};
        chainStatements(chain, statements(chainBody)); // declarations on the opening line
        stack.push({ kind: 'chain', chain });
      } else {
        stack.push({ kind: 'other' });
      }
      for (let i = 1; i < delta; i++) stack.push({ kind: 'other' });
    } else if (delta < 0) {
      for (let i = 0; i < -delta && stack.length > 0; i++) {
        const closed = stack.pop()!;
        if (closed.chain) finish(closed.chain, family);
      }
      if (stack.length === 0) family = undefined;
    } else if (stack.length === 0 && /^(?:add\s+|create\s+)?table\s+/.test(line)) {
      tables++; // "add table inet filter" without a block
    }
  }
  // No dropping input base chain: whatever reaches the host is accepted by default.
  return { tables, rules, defaultInputPolicy: inputDrop ? 'drop' : 'accept' };
}

export interface IptablesSummary {
  tables: number;
  rules: number;
  defaultInputPolicy: FirewallState['defaultInputPolicy'];
}

/** Summarises iptables-save text: rules are `-A` lines, the policy is the filter table's `:INPUT` one. */
export function parseIptablesSave(text: string): IptablesSummary {
  let tables = 0;
  let rules = 0;
  let table: string | undefined;
  let policy: FirewallState['defaultInputPolicy'] = 'accept'; // no filter table loaded: nothing drops
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) {
      table = line.slice(1);
      tables++;
    } else if (line.startsWith('-A ')) {
      rules++;
    } else if (table === 'filter') {
      const m = /^:INPUT\s+(\S+)/.exec(line);
      if (m) policy = m[1] === 'DROP' ? 'drop' : m[1] === 'ACCEPT' ? 'accept' : 'unknown';
    }
  }
  return { tables, rules, defaultInputPolicy: policy };
}

export function collectFirewall(root: string, inputs: FirewallInputs = {}): FirewallState {
  const { nftRuleset, iptablesSave } = inputs;
  // Live state first: it is what the kernel enforces.
  if (nftRuleset !== undefined) {
    const nft = parseNft(nftRuleset);
    if (nft.tables > 0) return { tool: 'nftables', rules: nft.rules, defaultInputPolicy: nft.defaultInputPolicy };
  }
  if (iptablesSave !== undefined) {
    const ipt = parseIptablesSave(iptablesSave);
    if (ipt.tables > 0) return { tool: 'iptables', rules: ipt.rules, defaultInputPolicy: ipt.defaultInputPolicy };
  }
  if (nftRuleset !== undefined || iptablesSave !== undefined) {
    // We saw the live state and it is empty: no firewall, everything accepted.
    return { tool: 'none', rules: 0, defaultInputPolicy: 'accept' };
  }
  // No live view (not root, tools missing): fall back to what would be loaded at boot.
  const conf = readText(under(root, 'etc/nftables.conf'));
  if (conf !== undefined) {
    const nft = parseNft(conf);
    if (nft.tables > 0) return { tool: 'nftables', rules: nft.rules, defaultInputPolicy: nft.defaultInputPolicy };
  }
  const v4 = readText(under(root, 'etc/iptables/rules.v4'));
  if (v4 !== undefined) {
    const ipt = parseIptablesSave(v4);
    if (ipt.tables > 0) return { tool: 'iptables', rules: ipt.rules, defaultInputPolicy: ipt.defaultInputPolicy };
  }
  return { tool: 'none', rules: 0, defaultInputPolicy: 'unknown' };
}
