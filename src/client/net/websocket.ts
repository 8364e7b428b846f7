/**
 * The WebSocket client of the client library on Bun and Node. The token travels as subprotocols, which every
 * implementation can send; what differs is a private CA (ControlTls.ca) and whether there is a WebSocket at all:
 *
 *   Bun                     its own WebSocket; a CA goes in Bun's options-object form ({ protocols, tls: { ca } })
 *   Node >= 22, no CA       the runtime's WebSocket (undici's)
 *   Node 20, or with a CA   the `ws` package (Node 20 has no WebSocket without a flag, and undici's takes no CA
 *                           without a dispatcher from a separate undici install); loaded only then
 */

/** What the library uses of a WebSocket: the standard `on*` handlers, readyState, send, close. */
export interface WebSocketLike {
  readonly readyState: number
  send(data: string): void
  close(code?: number, reason?: string): void
  onopen: ((ev: unknown) => void) | null
  onmessage: ((ev: { data: unknown }) => void) | null
  onclose: ((ev: { code: number; reason: string }) => void) | null
  onerror: ((ev: unknown) => void) | null
}

export interface WebSocketOptions {
  protocols?: string[]
  /** PEM certificates to trust instead of the system list (a private CA), for wss:// URLs. */
  ca?: string
}

export type WebSocketImpl = 'bun' | 'runtime' | 'ws'

/** readyState values (the WHATWG WebSocket API's numbering). */
export const WS_OPEN = 1
export const WS_CLOSED = 3

type Ctor = new (url: string, protocolsOrInit?: unknown, wsOptions?: unknown) => WebSocketLike
const runtimeWebSocket = () => (globalThis as { WebSocket?: Ctor }).WebSocket

/** Which implementation a connection with these options gets here. */
export function webSocketImpl(o: WebSocketOptions): WebSocketImpl {
  if ((globalThis as { Bun?: unknown }).Bun && runtimeWebSocket()) return 'bun'
  return runtimeWebSocket() && !o.ca ? 'runtime' : 'ws'
}

let wsPackage: Promise<Ctor> | undefined

/** Opens a WebSocket with the implementation `webSocketImpl` picks (or the one asked for: tests run each). */
export async function openWebSocket(url: string, o: WebSocketOptions, impl: WebSocketImpl = webSocketImpl(o)): Promise<WebSocketLike> {
  const protocols = o.protocols ?? []
  if (impl === 'ws') {
    wsPackage ??= import('ws').then((m) => (m as unknown as { WebSocket: Ctor }).WebSocket)
    const WS = await wsPackage
    return new WS(url, protocols, o.ca ? { ca: o.ca } : {})
  }
  const WS = runtimeWebSocket()
  if (!WS) throw new Error('this runtime has no WebSocket')
  return impl === 'bun' && o.ca ? new WS(url, { protocols, tls: { ca: o.ca } }) : new WS(url, protocols)
}
