/**
 * One error base for the whole project. `code` is what programs branch on (stable, SCREAMING_SNAKE);
 * `status` is the HTTP status the control server answers with when the error reaches a route.
 * Wire decoders never throw these: they return results (wire input never throws); these are for APIs.
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

/**
 * The command line itself is wrong (a missing or extra argument, options that exclude each other): exit 2 with the
 * message and a pointer to --help, like a ConfigError; anything that fails while the command runs is exit 1.
 */
export class UsageError extends LanrageError {
  constructor(message: string) {
    super('USAGE', message, 400)
  }
}

/**
 * A TCP or UDP port this process must own is held by another process. Raised at start, before anything listens,
 * so an operator sees one line naming the port and the option that moves it (`flag`) instead of two processes
 * silently sharing a port (Bun's HTTP listener reuses ports unless told not to) or an uncaught EADDRINUSE.
 * Commands print it like every LanrageError: `lanrage <cmd>: <message> (PORT_IN_USE)`, exit 1.
 */
export class PortInUseError extends LanrageError {
  constructor(
    readonly what: string,
    readonly port: number,
    readonly proto: 'tcp' | 'udp',
    readonly flag: string,
    options?: ErrorOptions,
  ) {
    super('PORT_IN_USE', `${what}: port ${port}/${proto} is already in use; choose another with ${flag}`, 500, options)
  }
  /** The same error naming another option (a library binds with its own option names; the command knows its flags). */
  withFlag(flag: string): PortInUseError {
    return new PortInUseError(this.what, this.port, this.proto, flag, { cause: this.cause })
  }
}

/** Whether `e` is the OS refusing a bind because the address and port are taken (Bun and Node report EADDRINUSE). */
export function isAddrInUse(e: unknown): boolean {
  const err = e as { code?: unknown; errno?: unknown; message?: unknown } | null
  return err?.code === 'EADDRINUSE' || (typeof err?.message === 'string' && /EADDRINUSE|address already in use/i.test(err.message))
}
