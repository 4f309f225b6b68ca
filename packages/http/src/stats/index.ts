// The stats surfaces: a live HTML page with JSON, and Prometheus metrics. Re-exports only.
export { statsPage } from './stats-page';
export type { StatsHandler, StatsJson, StatsPageOptions } from './stats-page';
export {
  PROMETHEUS_CONTENT_TYPE,
  escapeLabelValue,
  prometheus,
  prometheusHandler,
  renderPrometheus,
  renderPrometheusPieces,
  renderTrafficJson,
  renderTrafficJsonPieces,
} from './prometheus';
export { MAX_CONCURRENT_RENDERS, SMALL_BODY_BACKENDS, sendRendersBusy, streamBody } from './stream';
export type { StatsEvent } from './event-log';
export type { StatsFrontends, StatsPool, StatsSource } from './source';
export type { PrometheusHandlerOptions } from './prometheus';
export { DURATION_BOUNDS_MS, SERIES_SECONDS, quantileOf, trafficOf } from './traffic';
export type { BackendTrafficJson, HistogramJson, LastCheck, PoolTraffic, PoolTrafficJson, ResponseClasses, SeriesJson } from './traffic';
