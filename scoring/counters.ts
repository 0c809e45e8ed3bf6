/**
 * Per-node counters, summed. In a cluster every broker node sends its own `counters` event per interval for a device
 * it holds sessions of: two at once when the device has sessions on two nodes, or one after another as it reconnects
 * elsewhere. The rate baseline must see one sample per interval with all of the device's traffic, or a device spread
 * over 3 nodes looks 3× less busy (3 samples of a third) or, against a baseline learned on one node, spikes when it
 * comes back. This sums the events of different nodes that arrive within one interval of the first into one event.
 *
 * Each node sends at most one event per interval per device, so a window of one interval from the first arrival
 * holds one event of each node that saw the device. Events without a node (one gateway) are not windowed at all.
 * Pure: `now` passed in.
 */
import type { BehaviourEvent } from '../protocol/index.js';

type Counters = NonNullable<BehaviourEvent['counters']>;

interface Window {
  opened: number;
  nodes: Set<string>;
  event: BehaviourEvent & { counters: Counters };
}

export class CounterWindows {
  private readonly open = new Map<string, Window>();

  /**
   * Adds one node's counters event (it must have `node` and `counters`); returns the summed events this completes
   * (a window that already had this node's event, or that is an interval old), to apply in order.
   */
  add(event: BehaviourEvent, now: number): BehaviourEvent[] {
    const counters = event.counters!;
    const node = event.node!;
    const w = this.open.get(event.device);
    if (w && now - w.opened < w.event.counters.intervalMs && !w.nodes.has(node)) {
      w.nodes.add(node);
      const sum = w.event.counters;
      // Nodes share one eventInterval; should one differ, the longer interval keeps the rate from being overstated.
      sum.intervalMs = Math.max(sum.intervalMs, counters.intervalMs);
      sum.messagesIn += counters.messagesIn;
      sum.bytesIn += counters.bytesIn;
      sum.messagesOut += counters.messagesOut;
      sum.bytesOut += counters.bytesOut;
      sum.publishDenied += counters.publishDenied;
      sum.subscribeDenied += counters.subscribeDenied;
      sum.suppressedEvents += counters.suppressedEvents;
      return [];
    }
    const { node: _node, ...rest } = event;
    this.open.set(event.device, { opened: now, nodes: new Set([node]), event: { ...rest, counters: { ...counters } } });
    return w ? [w.event] : [];
  }

  /** Takes the windows open for a whole interval: their summed events, to apply now. */
  due(now: number): BehaviourEvent[] {
    const out: BehaviourEvent[] = [];
    for (const [device, w] of this.open) {
      if (now - w.opened >= w.event.counters.intervalMs) {
        this.open.delete(device);
        out.push(w.event);
      }
    }
    return out;
  }

  /** Devices with a window open (nothing applied yet). */
  get pending(): number {
    return this.open.size;
  }
}
