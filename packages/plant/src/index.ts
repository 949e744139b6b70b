export * from './live-state.ts'
export * from './local-time.ts'
export * from './plant-index.ts'
