export * from './broker.ts'
export * from './device-policy.ts'
