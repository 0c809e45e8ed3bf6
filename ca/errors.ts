/** An error meant for the client: carries the HTTP status and a one-line plain-text reason. */
export class CaError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 409 | 413,
    message: string,
  ) {
    super(message);
    this.name = 'CaError';
  }
}
