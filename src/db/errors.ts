/** SQLite errors as the layers above need them, so nothing above src/db matches driver codes or messages. */

/**
 * A UNIQUE or PRIMARY KEY constraint refused the write. bun:sqlite puts the extended code on the error (drizzle
 * may wrap it as `cause`); older messages carry only the text.
 */
export function isUniqueViolation(e: unknown): boolean {
  const x = e as { code?: string; message?: unknown; cause?: { code?: string } }
  const code = x?.code ?? x?.cause?.code
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || /UNIQUE constraint failed/.test(String(x?.message))
}
