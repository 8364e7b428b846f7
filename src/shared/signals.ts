/**
 * Listens for SIGINT and SIGTERM from now on. Taken before a server starts up, so that a SIGTERM arriving while it
 * starts (right after it logged "listening", say) is kept and ends the server once it is up, instead of hitting
 * the default action and killing the process mid-start. `dispose()` removes the handlers.
 */
export function stopSignal(): { signalled: Promise<string>; dispose(): void } {
  const { promise, resolve } = Promise.withResolvers<string>()
  const on = (sig: string) => {
    dispose()
    resolve(sig)
  }
  const dispose = () => {
    process.off('SIGINT', on)
    process.off('SIGTERM', on)
  }
  process.on('SIGINT', on)
  process.on('SIGTERM', on)
  return { signalled: promise, dispose }
}

/** Resolves on the first SIGINT or SIGTERM with the signal's name (server commands shut down cleanly on it). */
export function untilSignal(): Promise<string> {
  return stopSignal().signalled
}
