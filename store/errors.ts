/** Errors every backend speaks, so that callers can answer them without knowing the backend. */

/**
 * The store cannot be reached now (the database server is down, restarting or cut off): nothing was written, or,
 * when the connection broke during a commit, the caller cannot know and must not claim success. A gateway answers
 * it with 503 and the client tries again later.
 */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}
