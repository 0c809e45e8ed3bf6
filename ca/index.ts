export { CertificateAuthority, normalizeSerial, toPem, REVOCATION_REASONS, DEFAULT_CERT_LIFETIME_MS } from './authority.js';
export type { AuthorityOptions, IssuedCertificate, KeyAndCertificate, RevocationReason, RevocationTarget } from './authority.js';
export { CaError } from './errors.js';
export { Inventory } from './inventory.js';
export type { CertificateRow, DeviceRow } from './inventory.js';
export { parseCsr, decodeBase64Body, MAX_CSR_BYTES } from './csr.js';
export { createEstHandler, EST_PREFIX, MAX_BODY_BYTES } from './est.js';
export { generateP256, writePrivateKey, readPrivateKey, PRIVATE_KEY_MODE } from './keys.js';
export { certificateCommonName, readServiceCredentials, writeFileAtomic } from './files.js';
