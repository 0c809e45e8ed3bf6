/** Every fuzz target by name: the parsers (pure, fast) and the network ones (a real gateway). */
import { estTarget } from './est.js';
import { apiTarget } from './api.js';
import { mqttTarget } from './mqtt.js';
import { PARSER_TARGETS, type FuzzTarget } from './targets.js';

export const TARGETS: ReadonlyMap<string, FuzzTarget<any>> = new Map([...PARSER_TARGETS, [mqttTarget.name, mqttTarget as FuzzTarget<any>], [estTarget.name, estTarget as FuzzTarget<any>], [apiTarget.name, apiTarget as FuzzTarget<any>]]);
