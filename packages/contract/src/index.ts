export * from './device-auth.ts'
export * from './plant-model.ts'
export * from './topics.ts'
