/**
 * The single node's message bus: Aedes' own default (mqemitter with at most 100 messages in progress, the rest
 * queued), with one change. mqemitter starts the next queued message from inside the callback of the one that just
 * finished, so when the queued messages' subscribers all answer at once (our in-process subscribers do; a topic
 * nobody subscribes to has none), a queue of a few thousand messages is worked off as one ever deeper recursion,
 * and the gateway dies of "Maximum call stack size exceeded". The 10,000-device soak hit it in minutes (a burst
 * of state reports queued behind deliveries still writing); one device with a slow socket and many publishers
 * could aim for it. Upstream knows (mqemitter PR #204, open since 2022: a setImmediate per message was refused as
 * too slow); here the recursion is cut every MAX_DEPTH nested starts, so the cost is one setImmediate per 64
 * queued messages and the order of the queue is kept.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** Nested message starts before the next one waits for a fresh stack (each level is ~10 frames). */
export const MAX_DEPTH = 64;

type Callback = (err?: Error) => void;

/** The parts of an mqemitter instance this file touches (its queue is internal but stable since mqemitter 4). */
interface Emitter {
  concurrency: number;
  current: number;
  _doing: boolean;
  _messageQueue: unknown[];
  _messageCallbacks: Callback[];
  _released(): void;
  _do(message: unknown, callback: Callback): unknown;
}

// CommonJS `module.exports = fn`, required as Aedes requires it.
const mqemitter = require('mqemitter') as (opts: Record<string, unknown>) => Emitter;

/** Options as Aedes gives its default bus: `concurrency` messages in progress, `#` matching its parent level. */
export function localBus(concurrency = 100): Emitter {
  const bus = mqemitter({ concurrency, matchEmptyLevels: true });
  const start = bus._do;
  let depth = 0;
  bus._do = function (this: Emitter, message: unknown, callback: Callback) {
    if (depth >= MAX_DEPTH) {
      // Back to the head of the queue, holding the slot the finished message freed, so that messages emitted
      // meanwhile queue behind it (order kept); the next turn of the event loop starts it on an empty stack.
      this._messageQueue.unshift(message);
      this._messageCallbacks.unshift(callback);
      this.current++;
      this._doing = true;
      setImmediate(() => this._released());
      return this;
    }
    depth++;
    try {
      return start.call(this, message, callback);
    } finally {
      depth--;
    }
  };
  return bus;
}
