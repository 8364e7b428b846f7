// The limiters alone: fixed windows with refunds, and the gate's bound and rotation.
import { describe, expect, test } from 'bun:test'
import { FairGate, FixedWindowLimiter, GateFullError } from './limits.ts'

describe('FixedWindowLimiter', () => {
  test('counts attempts per key per window; a refund gives one back; the window resets', () => {
    const l = new FixedWindowLimiter(2, 60_000)
    expect(l.take('a', 0)).toBeUndefined()
    expect(l.take('a', 1000)).toBeUndefined()
    expect(l.take('a', 10_000)).toBe(50)
    expect(l.take('b', 10_000)).toBeUndefined()
    l.refund('a')
    expect(l.take('a', 10_000)).toBeUndefined()
    expect(l.take('a', 59_999)).toBe(1)
    expect(l.take('a', 60_000)).toBeUndefined()
  })
})

describe('FairGate', () => {
  const deferred = () => {
    let resolve!: () => void
    const p = new Promise<void>((r) => (resolve = r))
    return { p, resolve }
  }

  test('runs at most `concurrency` tasks; waiting keys are served in turn, not in arrival order', async () => {
    const gate = new FairGate(1)
    const order: string[] = []
    const blockers = new Map<string, ReturnType<typeof deferred>>()
    const task = (name: string) => () => {
      order.push(name)
      const d = deferred()
      blockers.set(name, d)
      return d.p
    }
    const runs = [gate.run('x', task('x0'))]
    for (let i = 1; i <= 5; i++) runs.push(gate.run('x', task(`x${i}`)))
    runs.push(gate.run('y', task('y0')))
    expect(order).toEqual(['x0'])
    expect(gate.waiting).toBe(6)
    for (let i = 0; i < 7; i++) {
      await Bun.sleep(0)
      blockers.get(order.at(-1)!)!.resolve()
      await Bun.sleep(0)
    }
    await Promise.all(runs)
    // y waited behind one x task, not behind the five queued before it.
    expect(order).toEqual(['x0', 'x1', 'y0', 'x2', 'x3', 'x4', 'x5'])
    expect(gate.started).toBe(7)
  })

  test('refuses callers beyond maxWaiting', async () => {
    const gate = new FairGate(1, 2)
    const d = deferred()
    const runs = [gate.run('a', () => d.p), gate.run('a', async () => {}), gate.run('b', async () => {})]
    await expect(gate.run('c', async () => {})).rejects.toBeInstanceOf(GateFullError)
    d.resolve()
    await Promise.all(runs)
    expect(gate.waiting).toBe(0)
  })
})
