export * from './history-store.ts'
export * from './retention.ts'
export * from './types.ts'
