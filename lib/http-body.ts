/** Reading a request body into memory with a hard limit (EST, OCSP): the declared length is checked first, then every chunk. */
import type { IncomingMessage } from 'node:http';

/**
 * The body, at most `limit` bytes; 'too-large' past that (the rest is drained unread so the connection can answer)
 * or when the upload was aborted before its end ('aborted').
 */
export function readLimitedBody(req: IncomingMessage, limit: number): Promise<Buffer | 'too-large' | 'aborted'> {
  return new Promise((resolve, reject) => {
    if (Number(req.headers['content-length'] ?? 0) > limit) {
      req.resume();
      return resolve('too-large');
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        resolve('too-large');
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    // An aborted upload ends here (a no-op after 'end'): nothing to answer, but the promise must not hang.
    req.on('close', () => resolve('aborted'));
    req.on('error', reject);
  });
}
