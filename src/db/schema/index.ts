// Every table must be exported from here for drizzle-kit to see it (drizzle.config.ts points at this folder).
export * from './settings.ts'
export * from './control.ts'
