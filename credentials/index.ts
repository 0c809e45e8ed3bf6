/** credentials/: secrets for devices — entitlement, at-rest and end-to-end encryption, operators' use cases, delivery. */
export { isEntitled, whyNotEntitled, type CredentialTerms, type DeviceStanding } from './entitlement.js';
export { decryptWithKey, encryptForCertificate, openSecret, type SecretPayload } from './jwe.js';
export { CREDENTIAL_KEY_FILE, CredentialVault } from './vault.js';
export { assertCredentialName, CredentialError, CredentialService, DEFAULT_MAX_VALUE_BYTES, type AuditRecorder, type CredentialInfo, type CredentialServiceOptions, type CredentialTermsInput } from './service.js';
export { CredentialDelivery, type DeliveryPort } from './delivery.js';
