/**
 * The version `wott --version` prints. A constant rather than a read of package.json, so that the agent-only
 * bundle (one file, no package.json beside it) prints the same; test/packaging checks it equals package.json's.
 */
export const VERSION = '0.1.0';
