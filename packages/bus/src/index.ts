export * from './aedes-bus.ts'
export * from './bus.ts'
export * from './internal-topics.ts'
export * from './mqtt-bus.ts'
