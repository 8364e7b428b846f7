/**
 * What `lanrage/control`, `lanrage/relay` and `lanrage/settings` resolve to outside Bun (package.json `exports`,
 * "default" beside "bun"): one clear error at import instead of a failure deep inside on Bun.serve, Bun's UDP
 * sockets or bun:sqlite.
 */
throw new Error(
  'this part of lanrage runs on Bun only (the servers use Bun.serve, Bun.udpSocket and bun:sqlite); run your program with bun, ' +
    'or use the `lanrage` command, which brings its own Bun. The client library (`lanrage`, `lanrage/client`, or the lanrage-client package) runs on Node too.',
)
