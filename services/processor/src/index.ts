export * from './metrics.ts'
export * from './processor.ts'
