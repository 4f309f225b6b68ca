// The standalone proxy (`fulcrum --config`): config, runner, admin API, access logs. Re-exports only.
export { runCli } from './main';
export type { CliIo } from './main';
export { startFulcrum } from './runner';
export type { FulcrumInstance, StartOptions, WorkerOptions } from './runner';
export { MergedEntries, mergeReports, parseWorkers } from './workers';
export type { WorkerStats } from './worker-stats';
export type { RenderSlot, WorkerChange, WorkerReport } from './workers';
export { LOG_LEVELS, createLogger, stderrLogger } from './log';
export type { LogLevel, LoggerOptions, RunnerLogger } from './log';
export { substituteEnv, validateConfig, validateConfigAsync } from './config';
export { ConfigPathError, MAX_CONFIG_FILE_BYTES, readConfigFile } from './files';
export type {
  FrontendConfig,
  FulcrumConfig,
  FulcrumConfigFile,
  HealthConfig,
  PoolConfig,
  ReplicationConfig,
  RouteConfig,
  EndpointAuthConfig,
  EndpointListenerConfig,
  ValidateAsyncOptions,
  ValidateOptions,
} from './config';
export { ConfigFileError, loadConfig, parseConfigText } from './load';
export { AccessLogWriter, formatJson, formatText } from './access-log';
export type { AccessLogFormat, AccessLogWriterOptions } from './access-log';
export { createAdminHandler } from './admin';
export type { AdminControl, AdminHandlerOptions } from './admin';
