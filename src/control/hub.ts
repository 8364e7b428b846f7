/**
 * Live connections: which WebSockets belong to which peer, and which token opened each. The service decides who
 * hears an event (the members of a party); the hub only delivers. Sends are fire-and-forget: Bun buffers per
 * socket (backpressure limit set on the server) and a dead socket is removed by its close handler.
 *
 * A socket lives no longer than its token: revoking or refreshing the token closes it, and so does the cleanup
 * pass once the token expired (close code WS_CLOSE.UNAUTHORIZED). One token holds at most `maxPerToken`
 * sockets; opening one more closes the oldest (WS_CLOSE.TOO_MANY_SOCKETS), so a token cannot multiply every event.
 */
import { WS_CLOSE, type LiveMessage } from '../shared/api.ts'

export interface LiveSocket {
  readonly id: string
  /** SHA-256 of the bearer token the socket was opened with. */
  readonly tokenHash: string
  /** When that token expires (unix ms). */
  readonly expiresAt: number
  send(text: string): unknown
  close(code?: number, reason?: string): unknown
}

export class Hub {
  private readonly byPeer = new Map<string, Map<string, LiveSocket>>()
  /** tokenHash → its sockets, oldest first (Map keeps insertion order). */
  private readonly byToken = new Map<string, Map<string, LiveSocket>>()
  private count = 0

  constructor(private readonly maxPerToken = Infinity) {}

  add(peerId: string, ws: LiveSocket): void {
    let set = this.byPeer.get(peerId)
    if (!set) this.byPeer.set(peerId, (set = new Map()))
    if (set.has(ws.id)) return
    set.set(ws.id, ws)
    this.count++
    let mine = this.byToken.get(ws.tokenHash)
    if (!mine) this.byToken.set(ws.tokenHash, (mine = new Map()))
    mine.set(ws.id, ws)
    for (const old of mine.values()) {
      if (mine.size <= this.maxPerToken) break
      this.remove(peerId, old)
      old.close(WS_CLOSE.TOO_MANY_SOCKETS, 'too many sockets for this token')
    }
  }

  remove(peerId: string, ws: LiveSocket): void {
    const set = this.byPeer.get(peerId)
    if (!set?.delete(ws.id)) return
    this.count--
    if (!set.size) this.byPeer.delete(peerId)
    const mine = this.byToken.get(ws.tokenHash)
    mine?.delete(ws.id)
    if (mine && !mine.size) this.byToken.delete(ws.tokenHash)
  }

  /** Sends one JSON message to every socket of `peerId`; returns how many sockets got it. */
  sendTo(peerId: string, msg: LiveMessage, text = JSON.stringify(msg)): number {
    const set = this.byPeer.get(peerId)
    if (!set) return 0
    for (const ws of set.values()) ws.send(text)
    return set.size
  }

  sendToAll(peerIds: Iterable<string>, msg: LiveMessage): void {
    const text = JSON.stringify(msg)
    for (const p of peerIds) this.sendTo(p, msg, text)
  }

  /** Closes every socket opened with this token (revoked, refreshed or expired). */
  closeToken(peerId: string, tokenHash: string, reason: string): void {
    for (const ws of [...(this.byToken.get(tokenHash)?.values() ?? [])]) {
      this.remove(peerId, ws)
      ws.close(WS_CLOSE.UNAUTHORIZED, reason)
    }
  }

  /** Closes the sockets whose token expired by `now`; returns how many. */
  closeExpired(now: number): number {
    let n = 0
    for (const [peerId, set] of [...this.byPeer])
      for (const ws of [...set.values()])
        if (ws.expiresAt <= now) {
          this.remove(peerId, ws)
          ws.close(WS_CLOSE.UNAUTHORIZED, 'token expired')
          n++
        }
    return n
  }

  isOnline(peerId: string): boolean {
    return this.byPeer.has(peerId)
  }

  get clients(): number {
    return this.count
  }

  closeAll(code = 1001, reason = 'server shutting down'): void {
    for (const set of this.byPeer.values()) for (const ws of set.values()) ws.close(code, reason)
    this.byPeer.clear()
    this.byToken.clear()
    this.count = 0
  }
}
