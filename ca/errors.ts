/** An error meant for the client: carries the HTTP status and a one-line plain-text reason. */
export class CaError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 409 | 413 | 429 | 503,
    message: string,
    readonly extra: {
      /** Extra response headers (Retry-After ...). */
      headers?: Record<string, string>;
      /** The precise reason, for the server log only, when the client gets a deliberately vaguer message. */
      detail?: string;
    } = {},
  ) {
    super(message);
    this.name = 'CaError';
  }
}

/** The data folder holds no CA, and the caller asked not to create one (every CLI command but `ca init` and `gateway`). */
export class NoCaError extends Error {
  override name = 'NoCaError';
  constructor(readonly dataDir: string) {
    super(`no CA in ${dataDir}`);
  }
}
