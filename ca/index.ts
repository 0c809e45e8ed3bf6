export { CertificateAuthority, normalizeSerial, toPem, REVOCATION_REASONS, DEFAULT_CERT_LIFETIME_MS } from './authority.js';
export type { AuthorityOptions, IssuedCertificate, KeyAndCertificate, RevocationReason, RevocationTarget } from './authority.js';
export { CaError } from './errors.js';
export { parseCsr, decodeBase64Body, MAX_CSR_BYTES } from './csr.js';
export { createEstHandler, startUnclaimedSweeper, enrollmentLimits, DEFAULT_ENROLLMENT_LIMITS, UNAUTHENTICATED_REFUSAL, MAX_BODY_BYTES } from './est.js';
export type { EnrollmentLimits, EnrollmentService, EstHandler, EstOptions } from './est.js';
export { generateP256, writePrivateKey, readPrivateKey } from './keys.js';
export { certificateCommonName, readServiceCredentials } from './service-credentials.js';
