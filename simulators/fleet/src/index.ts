export * from './demo-fleet.ts'
export * from './equipment-model.ts'
export * from './model/index.ts'
export * from './plant-generator.ts'
