/**
 * Live connections: which WebSockets belong to which peer. The service decides who hears an event (the members
 * of a party); the hub only delivers. Sends are fire-and-forget: Bun buffers per socket (backpressure limit set
 * on the server) and a dead socket is removed by its close handler.
 */
import type { LiveMessage } from '../shared/api.ts'

export interface LiveSocket {
  readonly id: string
  /** SHA-256 of the bearer token the socket was opened with. */
  readonly tokenHash?: string
  send(text: string): unknown
  close(code?: number, reason?: string): unknown
}

export class Hub {
  private readonly byPeer = new Map<string, Map<string, LiveSocket>>()
  private count = 0

  add(peerId: string, ws: LiveSocket): void {
    let set = this.byPeer.get(peerId)
    if (!set) this.byPeer.set(peerId, (set = new Map()))
    if (!set.has(ws.id)) this.count++
    set.set(ws.id, ws)
  }

  remove(peerId: string, ws: LiveSocket): void {
    const set = this.byPeer.get(peerId)
    if (!set?.delete(ws.id)) return
    this.count--
    if (!set.size) this.byPeer.delete(peerId)
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

  /** Closes the peer's sockets that were opened with this token (revoked or expired). */
  closeToken(peerId: string, tokenHash: string, code: number, reason: string): void {
    const set = this.byPeer.get(peerId)
    if (!set) return
    for (const ws of [...set.values()]) if (ws.tokenHash === tokenHash) ws.close(code, reason)
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
    this.count = 0
  }
}
