/** Eclipse Mosquitto 2.x with wott's trust policies: generated configuration and the Dynamic Security sync. */
export {
  DeviceAclCompiler,
  serviceRoleAcls,
  deviceRoleName,
  serviceRoleName,
  scoreBand,
  aclScore,
  aclKey,
  mosquittoDecides,
  topicMatchesFilter,
  aclContainsFilter,
  comparePrecedence,
  ACL_TYPES,
} from './acl.js';
export type { DynsecAcl, AclType, Access } from './acl.js';
export { policyThresholds } from '../policy/index.js';
export {
  mosquittoConf,
  initialDynsecConfig,
  writeMosquittoConfig,
  mosquittoPaths,
  findDynsecPlugin,
  serverCertificateDue,
  DYNSEC_PLUGIN_CANDIDATES,
  MosquittoFolderError,
} from './config.js';
export { brokerFolderProblem, modeAllows, userIds, type UserIds } from './access.js';
export type { MosquittoConfOptions, WriteMosquittoConfigOptions, WrittenMosquittoConfig, DynsecConfig } from './config.js';
export { DynsecControl, DynsecError, DYNSEC_COMMAND_TOPIC, DYNSEC_RESPONSE_TOPIC } from './control.js';
export type { DynsecCommand, DynsecResponse } from './control.js';
export { startMosquittoSync, readSyncCredentials, mosquittoSectionSchema } from './sync.js';
export type { MosquittoSync, MosquittoSyncOptions, MosquittoSection, SyncLogger, SyncStats } from './sync.js';
