/**
 * Loaded before every test file (bunfig.toml [test] preload). Test runs share this machine with each other, and
 * every `lanrage up` a test starts serves its local API: unless a test names a port (`--api-port`, or its own
 * LANRAGE_API_PORT), the agents it starts take any free one instead of 8666, so no two runs compete for it.
 */
process.env.LANRAGE_API_PORT ??= '0'
