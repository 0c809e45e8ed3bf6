/**
 * Which fleet device held which network address, and when: the broker's connect/disconnect events (they carry the
 * session's remote address and, in a cluster, the node) fold into holdings kept in memory, so that attributing an
 * intrusion source is a map lookup, never a storage query. Pure: times are passed in.
 *
 * A holding is one device's sessions from one address on one node: held from its first connect until its last
 * session there closed. Closed holdings are kept `retainMs` (a report's window reaches that far back), and at most
 * `limit` holdings in all: beyond it the least recently touched go first, and a forgotten holding only ever makes
 * attribution blame nobody, never someone else.
 */

export interface AddressBookOptions {
  /** Holdings kept at most (default 100,000: a 10,000-device fleet with a few sessions each and a day of churn). */
  limit?: number;
  /** How long a closed holding still answers lookups (default 24 h, the longest intrusion window). */
  retainMs?: number;
}

interface Holding {
  address: string;
  device: string;
  node: string;
  open: number;
  from: number;
  /** When its last session closed; undefined while one is open. */
  to: number | undefined;
}

/** One address form per host: IPv4-mapped IPv6 (a dual-stack listener's view of an IPv4 peer) as plain IPv4, IPv6 lowercased, no zone. */
export function normalizeAddress(address: string): string {
  let a = address.trim().toLowerCase();
  if (a.startsWith('[') && a.endsWith(']')) a = a.slice(1, -1);
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  if (a.startsWith('::ffff:') && a.includes('.')) a = a.slice(7);
  return a;
}

export class AddressBook {
  /** key `address|device|node` → holding; Map order is touch order (re-inserted on every change): oldest first. */
  private readonly holdings = new Map<string, Holding>();
  private readonly byAddress = new Map<string, Set<string>>();
  private readonly byDevice = new Map<string, Set<string>>();
  readonly limit: number;
  private readonly retainMs: number;
  /** Holdings dropped to stay within `limit` (an open one among them means a missed attribution, never a wrong one). */
  evicted = 0;

  constructor(options: AddressBookOptions = {}) {
    this.limit = options.limit ?? 100_000;
    this.retainMs = options.retainMs ?? 86_400_000;
  }

  get size(): number {
    return this.holdings.size;
  }

  connect(device: string, rawAddress: string, node: string, at: number): void {
    const address = normalizeAddress(rawAddress);
    if (!address) return;
    const key = `${address}|${device}|${node}`;
    const h = this.holdings.get(key);
    if (h) {
      this.holdings.delete(key);
      h.open++;
      h.to = undefined;
      this.holdings.set(key, h);
      return;
    }
    this.holdings.set(key, { address, device, node, open: 1, from: at, to: undefined });
    index(this.byAddress, address, key);
    index(this.byDevice, device, key);
    if (this.holdings.size > this.limit) this.evict();
  }

  /**
   * Sessions that were open before scoring listened (it starts after the broker, or takes over in a cluster):
   * `open` sessions of `device` from the address, unless a connect event already recorded that holding (so a
   * session seen both ways is not counted twice and left open forever).
   */
  seed(device: string, rawAddress: string, node: string, open: number, at: number): void {
    const address = normalizeAddress(rawAddress);
    if (!address || open <= 0 || this.holdings.has(`${address}|${device}|${node}`)) return;
    this.connect(device, address, node, at);
    this.holdings.get(`${address}|${device}|${node}`)!.open = open;
  }

  /** Without an address (events from an older broker), the device's only open holding on that node is meant, if there is exactly one. */
  disconnect(device: string, rawAddress: string | undefined, node: string, at: number): void {
    let key: string | undefined;
    if (rawAddress) key = `${normalizeAddress(rawAddress)}|${device}|${node}`;
    else {
      const open = [...(this.byDevice.get(device) ?? [])].filter((k) => {
        const h = this.holdings.get(k)!;
        return h.node === node && h.open > 0;
      });
      if (open.length === 1) key = open[0];
    }
    const h = key ? this.holdings.get(key) : undefined;
    if (!h || h.open === 0) return;
    this.holdings.delete(key!);
    h.open--;
    if (h.open === 0) h.to = at;
    this.holdings.set(key!, h);
  }

  /** The devices that held `address` at any moment of [from, to], each once. */
  holders(rawAddress: string, from: number, to: number): string[] {
    const keys = this.byAddress.get(normalizeAddress(rawAddress));
    if (!keys) return [];
    const out = new Set<string>();
    for (const key of keys) {
      const h = this.holdings.get(key)!;
      if (h.from <= to && (h.to === undefined || h.to >= from)) out.add(h.device);
    }
    return [...out];
  }

  /** True while `device` has an open session from anywhere. */
  connected(device: string): boolean {
    for (const key of this.byDevice.get(device) ?? []) if (this.holdings.get(key)!.open > 0) return true;
    return false;
  }

  /**
   * Closed holdings go first, oldest touched first; an open one met on the way moves to the back (its device is
   * still connected from there), so each eviction is O(1) amortised. Only when every holding is open does the
   * least recently touched open one go.
   */
  private evict(): void {
    let rotations = 32; // bounded: a map full of open holdings must not make every connect O(n)
    while (this.holdings.size > this.limit) {
      const [key, h] = this.holdings.entries().next().value as [string, Holding];
      if (h.open > 0 && rotations-- > 0) {
        this.holdings.delete(key);
        this.holdings.set(key, h);
        continue;
      }
      this.remove(key, h);
      this.evicted++;
    }
  }

  /** The nodes some device has an open session on (as far as connect and disconnect events told). */
  openNodes(): Set<string> {
    const out = new Set<string>();
    for (const h of this.holdings.values()) if (h.open > 0) out.add(h.node);
    return out;
  }

  /**
   * `node` died without saying goodbye (SIGKILL, power loss: no disconnect events): its sessions are gone, so its
   * devices no longer hold their addresses from `at` on. Without this they would hold them forever, and a device
   * given the address later would share it with a ghost (attributing to nobody) or inherit the blame window.
   * Returns how many holdings it closed.
   */
  closeNode(node: string, at: number): number {
    let closed = 0;
    for (const [key, h] of [...this.holdings]) {
      if (h.node !== node || h.open === 0) continue;
      this.holdings.delete(key);
      h.open = 0;
      h.to = Math.max(h.from, at);
      this.holdings.set(key, h);
      closed++;
    }
    return closed;
  }

  /** Drops closed holdings past retention (the service calls it now and then). */
  prune(now: number): void {
    for (const [key, h] of this.holdings) if (h.to !== undefined && now - h.to > this.retainMs) this.remove(key, h);
  }

  private remove(key: string, h: Holding): void {
    this.holdings.delete(key);
    unindex(this.byAddress, h.address, key);
    unindex(this.byDevice, h.device, key);
  }
}

function index(map: Map<string, Set<string>>, k: string, key: string): void {
  let set = map.get(k);
  if (!set) map.set(k, (set = new Set()));
  set.add(key);
}

function unindex(map: Map<string, Set<string>>, k: string, key: string): void {
  const set = map.get(k);
  if (!set) return;
  set.delete(key);
  if (set.size === 0) map.delete(k);
}

/**
 * Which cluster nodes to treat as dead: a node with open holdings whose heartbeat record (gateway/cluster-status.ts)
 * has been missing for `graceMs` (one missed look is not enough: a node writes its first record only once it has
 * started, and Redis may answer a scan between a record's expiry and its refresh). Pure: times and lookups passed in.
 */
export class NodeWatch {
  private readonly missingSince = new Map<string, number>();

  constructor(
    /** This node (scoring runs here, so it is alive whatever Redis says). */
    private readonly local: string,
    private readonly graceMs: number,
  ) {}

  /** Nodes that hold sessions (`holding`) and have been absent from `alive` for graceMs, with when they were first missed. */
  dead(holding: ReadonlySet<string>, alive: ReadonlySet<string>, now: number): Array<{ node: string; since: number }> {
    const out: Array<{ node: string; since: number }> = [];
    for (const node of [...this.missingSince.keys()]) if (alive.has(node) || !holding.has(node)) this.missingSince.delete(node);
    for (const node of holding) {
      if (node === this.local || alive.has(node)) continue;
      const since = this.missingSince.get(node) ?? now;
      this.missingSince.set(node, since);
      if (now - since >= this.graceMs) {
        out.push({ node, since });
        this.missingSince.delete(node);
      }
    }
    return out;
  }
}
