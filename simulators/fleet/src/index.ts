export * from './demo-fleet.ts'
export * from './model/index.ts'
export * from './plant-generator.ts'
export * from './sessions/index.ts'
