export * from './files.ts'
export * from './format.ts'
