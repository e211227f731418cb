export { generateSelfSigned, inspectCertificate, describeCertificate, sha256OfDer, normalisePin, formatPin, renewalDue, type CertificateInfo, type CertificatePair } from './certificate';
export {
  ensureCertificate,
  certificatePaths,
  certificateHosts,
  selfSignedPaths,
  readCertificateInfo,
  daysLeft,
  type ApiCertificate,
  type TlsSettings,
} from './certificate-files';
