/**
 * The HTTPS contract between agents and the CA: EST (RFC 7030) paths, the CRL and OCSP beside them, and wott's TPM
 * headers.
 * The CA serves these paths (ca/est.ts); the agent calls them (agent/est-client.ts).
 */

export const EST_PREFIX = '/.well-known/est';

export const EST_PATHS = {
  /** GET: the CA chain (intermediate, root) as certs-only PKCS#7. */
  cacerts: `${EST_PREFIX}/cacerts`,
  /** GET: 204, no attributes requested. */
  csrattrs: `${EST_PREFIX}/csrattrs`,
  /** POST a base64 PKCS#10: first enrollment (HTTP Basic device:token, TPM-signed, or claim mode). */
  simpleenroll: `${EST_PREFIX}/simpleenroll`,
  /** POST a base64 PKCS#10 over mTLS with the current certificate: renewal. */
  simplereenroll: `${EST_PREFIX}/simplereenroll`,
} as const;

/** GET: the current CRL, DER. */
export const CRL_PATH = '/crl';

/** OCSP (RFC 6960): POST a DER OCSPRequest here, or GET `${OCSP_PATH}/{url-encoded base64 request}`. */
export const OCSP_PATH = '/ocsp';

/** Base64 DER SubjectPublicKeyInfo of the device's TPM key (sent at enrollment to register it). */
export const TPM_KEY_HEADER = 'x-wott-tpm-key';
/** Base64 DER ECDSA (SHA-256) signature by the device's TPM key over the CSR's DER bytes. */
export const TPM_SIGNATURE_HEADER = 'x-wott-tpm-signature';
