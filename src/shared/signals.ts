/** Resolves on the first SIGINT or SIGTERM with the signal's name (server commands shut down cleanly on it). */
export function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (sig: string) => {
      process.off('SIGINT', on)
      process.off('SIGTERM', on)
      resolve(sig)
    }
    process.on('SIGINT', on)
    process.on('SIGTERM', on)
  })
}
