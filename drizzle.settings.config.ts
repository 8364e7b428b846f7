// drizzle-kit for the settings migration stream (`npm run db:generate` runs both streams' configs). drizzle-kit runs under
// Node and only *generates* SQL; the program applies it with drizzle's bun-sqlite migrator (src/db/migrations.ts).
import { defineConfig } from 'drizzle-kit'

export default defineConfig({
  dialect: 'sqlite',
  schema: './src/db/schema/settings.ts',
  out: './drizzle/settings',
  strict: true,
  breakpoints: true,
})
