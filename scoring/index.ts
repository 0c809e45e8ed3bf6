/** scoring/: telemetry + behaviour + peer reports → explainable Trust Scores, published retained and stored. */
export * from './model.js';
export * from './factors.js';
export * from './behaviour.js';
export * from './peers.js';
export * from './addresses.js';
export * from './lateral.js';
export * from './engine.js';
export * from './ca-facts.js';
export * from './influx.js';
export * from './points.js';
export * from './bus.js';
export * from './service.js';
export * from './start.js';
