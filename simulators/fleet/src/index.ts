export * from './demo-fleet.ts'
export * from './equipment-model.ts'
export * from './plant-generator.ts'
