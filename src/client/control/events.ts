/** A small typed event emitter: a throwing listener is isolated from the others and from the emitter. */
export class Emitter<E extends object> {
  private readonly listeners = new Map<keyof E, Set<(e: never) => void>>()

  on<K extends keyof E>(type: K, fn: (e: E[K]) => void): () => void {
    let set = this.listeners.get(type)
    if (!set) this.listeners.set(type, (set = new Set()))
    set.add(fn as (e: never) => void)
    return () => void set.delete(fn as (e: never) => void)
  }

  emit<K extends keyof E>(type: K, e: E[K]): void {
    for (const fn of this.listeners.get(type) ?? []) {
      try {
        ;(fn as (e: E[K]) => void)(e)
      } catch (err) {
        queueMicrotask(() => {
          throw err
        })
      }
    }
  }

  /** Resolves with the next event of `type` that satisfies `pred`, or rejects after `timeoutMs`. */
  next<K extends keyof E>(type: K, pred: (e: E[K]) => boolean = () => true, timeoutMs = 5000): Promise<E[K]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off()
        reject(new Error(`no ${String(type)} event within ${timeoutMs}ms`))
      }, timeoutMs)
      const off = this.on(type, (e) => {
        if (!pred(e)) return
        clearTimeout(timer)
        off()
        resolve(e)
      })
    })
  }
}
