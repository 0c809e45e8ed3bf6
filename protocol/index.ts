export * from './device-id.js';
export * from './service-id.js';
export * from './identity.js';
export * from './est.js';
export * from './topics.js';
export * from './messages.js';
export * from './serial.js';
export * from './telemetry.js';
