export { configSchema, SECRET_CONFIG_PATHS } from './schema';
export type { ProviderConfig, ProviderConfigInput } from './schema';
export {
  loadConfig,
  ConfigInvalidError,
  formatConfigProblems,
  formatOrigin,
  defaultConfigFile,
  defaultDataDir,
  parseScalar,
  ENV_PREFIX,
} from './load';
export type { ConfigSources, LoadedConfig, ConfigProblem, ConfigOrigin, FlagOverride } from './load';
export { redactConfig, redactUrl, configJsonSchema } from './present';
export { ReloadableConfig, RELOADABLE_SECTIONS, diffConfig, describeChange } from './reload';
export type { ConfigChange, ReloadOutcome } from './reload';
