// drizzle-kit for the control migration stream (`npm run db:generate` runs both streams' configs). drizzle-kit runs under
// Node and only *generates* SQL; the program applies it with drizzle's bun-sqlite migrator (src/db/migrations.ts).
import { defineConfig } from 'drizzle-kit'

export default defineConfig({
  dialect: 'sqlite',
  schema: './src/db/schema/control.ts',
  out: './drizzle/control',
  strict: true,
  breakpoints: true,
})
