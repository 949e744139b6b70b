export * from './access.ts'
export * from './gateway.ts'
export * from './live-hub.ts'
