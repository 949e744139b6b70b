export * from './processor.ts'
