/**
 * Typed errors of the control-plane clients: one class per kind, each with a stable `code` a launcher can
 * branch on. `serverCode` keeps the control server's own code (e.g. WRONG_PASSWORD, PARTY_FULL) when it sent one.
 */
import { LanrageError } from '../../shared/errors.ts'

export class ControlPlaneError extends LanrageError {
  constructor(
    code: string,
    message: string,
    status: number,
    readonly serverCode?: string,
    options?: ErrorOptions,
  ) {
    super(code, message, status, options)
  }
}

/** The server could not be reached (connection refused, reset, DNS, timeout) after all retries. */
export class ControlUnreachableError extends ControlPlaneError {
  constructor(message: string, options?: ErrorOptions) {
    super('CONTROL_UNREACHABLE', message, 503, undefined, options)
  }
}
/**
 * The server's certificate was refused (unknown CA, wrong name, expired): not retried. A server with a private CA
 * needs that CA (`tls.ca`, `--ca-file`).
 */
export class ControlTlsError extends ControlPlaneError {
  constructor(message: string, options?: ErrorOptions) {
    super('CONTROL_TLS', `${message}; the certificate is not trusted (for a private CA, give its certificate with --ca-file)`, 502, undefined, options)
  }
}
/** 401 even after re-registering, or registration itself refused. */
export class ControlAuthError extends ControlPlaneError {
  constructor(message: string, serverCode?: string) {
    super('CONTROL_UNAUTHORIZED', message, 401, serverCode)
  }
}
/** 403: not a member, not the host, wrong password... (`serverCode` says which). */
export class ControlForbiddenError extends ControlPlaneError {
  constructor(message: string, serverCode?: string) {
    super('CONTROL_FORBIDDEN', message, 403, serverCode)
  }
}
/** 404: no such party or peer. */
export class ControlMissingError extends ControlPlaneError {
  constructor(message: string, serverCode?: string) {
    super('CONTROL_NOT_FOUND', message, 404, serverCode)
  }
}
/** 409: e.g. the party is full. */
export class ControlConflictError extends ControlPlaneError {
  constructor(message: string, serverCode?: string) {
    super('CONTROL_CONFLICT', message, 409, serverCode)
  }
}
/** 400/422 and any other 4xx: the request was wrong; retrying will not help. */
export class ControlRequestError extends ControlPlaneError {
  constructor(message: string, status: number, serverCode?: string) {
    super('CONTROL_BAD_REQUEST', message, status, serverCode)
  }
}
/** 5xx after all retries. */
export class ControlServerError extends ControlPlaneError {
  constructor(message: string, status: number, serverCode?: string) {
    super('CONTROL_SERVER_ERROR', message, status, serverCode)
  }
}
/** The server answered 2xx with a body that is not what the contract says. */
export class ControlProtocolError extends ControlPlaneError {
  constructor(message: string) {
    super('CONTROL_PROTOCOL', message, 502)
  }
}

/** Maps an HTTP error answer to its typed error. */
export function errorFromResponse(status: number, body: unknown, what: string): ControlPlaneError {
  const e = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error
  const serverCode = typeof e?.code === 'string' ? e.code : undefined
  const detail = typeof e?.message === 'string' ? e.message : `HTTP ${status}`
  const message = `${what}: ${detail}${serverCode ? ` (${serverCode})` : ''}`
  if (status === 401) return new ControlAuthError(message, serverCode)
  if (status === 403) return new ControlForbiddenError(message, serverCode)
  if (status === 404) return new ControlMissingError(message, serverCode)
  if (status === 409) return new ControlConflictError(message, serverCode)
  if (status >= 500) return new ControlServerError(message, status, serverCode)
  return new ControlRequestError(message, status, serverCode)
}
