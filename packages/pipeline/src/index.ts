export { DeviceCountersCapture, decodeDeviceCounters, deviceCountersIndex } from './device-capture.ts'
export { DEFAULT_MAX_PROCESS_NAMES, isCountedName, namesToForget } from './device-names.ts'
export * from './pipeline.ts'
export { EARLIEST_ABSOLUTE_S, wallFloor } from './wall-floor.ts'
