// drizzle-kit runs under Node and only *generates* SQL here (`npm run db:generate`); the app applies it at
// start with drizzle's bun-sqlite migrator (src/db/client.ts). See STYLE.md §4.3.
import { defineConfig } from 'drizzle-kit'

export default defineConfig({
  dialect: 'sqlite',
  schema: './src/db/schema/index.ts',
  out: './drizzle',
  strict: true,
  breakpoints: true,
})
