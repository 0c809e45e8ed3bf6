/** Errors every backend speaks, so that callers can answer them without knowing the backend. */

/**
 * The store cannot be reached now (the database server is down, restarting or cut off): nothing was written, or,
 * when the connection broke during a commit, the caller cannot know and must not claim success. A gateway answers
 * it with 503 and the client tries again later.
 */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

/**
 * A score store write from a scorer whose lease epoch is below the newest one the store has seen: the writer was
 * deposed (another node leads scoring now), and nothing was written.
 */
export class StaleEpochError extends Error {
  override name = 'StaleEpochError';
  constructor(
    readonly epoch: number,
    /** The newest epoch the store has seen; a new leader's epoch must exceed it. */
    readonly fence: number,
  ) {
    super(`scoring epoch ${epoch} is stale: the store has seen epoch ${fence} (a newer scoring leader)`);
  }
}
