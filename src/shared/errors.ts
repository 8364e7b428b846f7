/**
 * One error base for the whole project. `code` is what programs branch on (stable, SCREAMING_SNAKE);
 * `status` is the HTTP status the control server answers with when the error reaches a route.
 * Wire decoders never throw these: they return results (see STYLE.md §2.3); these are for APIs.
 */
export class LanrageError extends Error {
  readonly code: string
  readonly status: number
  constructor(code: string, message: string, status = 400, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
    this.code = code
    this.status = status
  }
}

/** Bad configuration (flags, env, settings): lists every problem at once so a user fixes them in one go. */
export class ConfigError extends LanrageError {
  constructor(readonly problems: string[]) {
    super('INVALID_CONFIG', problems.join('\n'), 400)
  }
}
