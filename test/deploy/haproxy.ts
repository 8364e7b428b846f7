// deploy/haproxy.cfg as the tests run it: the shipped file with only its listening address, certificate path,
// server lines and log target replaced (each replacement must find its line, so a changed file cannot quietly
// test nothing), and haproxy in the foreground with it.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { waitFor } from '../client/helpers.ts'

const SHIPPED = join(import.meta.dir, '..', '..', 'deploy', 'haproxy.cfg')
export const PROXY_IP = '127.0.0.2'

/**
 * The shipped configuration for this test: the frontend on 127.0.0.1:port with `pem` as its certificate, the
 * backend's servers replaced by `servers`, logs on stderr (there is no syslog socket here). The proxy connects
 * to the servers from 127.0.0.2 (PROXY_IP): a host of its own, as far as the servers can tell, apart from the
 * clients on 127.0.0.1.
 */
export function haproxyConfig(o: { port: number; pem: string; servers: string[] }): string {
  let text = readFileSync(SHIPPED, 'utf8')
  const swap = (re: RegExp, by: string) => {
    if (!re.test(text)) throw new Error(`deploy/haproxy.cfg has no line matching ${re}: update this test with the file`)
    text = text.replace(re, by)
  }
  swap(/^(\s*)bind :443 ssl crt \S+/m, `$1bind 127.0.0.1:${o.port} ssl crt ${o.pem}`)
  swap(/^(\s*)server control1 \S+.*$/m, o.servers.map((s, i) => `    server control${i + 1} ${s} source ${PROXY_IP}`).join('\n'))
  swap(/^(\s*)log \/dev\/log local0$/m, '$1log stderr format raw local0')
  return text
}

const running = new Set<ReturnType<typeof Bun.spawn>>()
// Never leave a haproxy behind, even when a test fails before stopping it.
process.once('exit', () => {
  for (const p of running) p.kill('SIGKILL')
})

/** haproxy in the foreground with `config` (written into `dir`); resolves once its frontend accepts connections. */
export async function startHaproxy(config: string, port: number, dir: string) {
  const file = join(dir, `haproxy-${port}.cfg`)
  writeFileSync(file, config)
  const check = Bun.spawnSync(['haproxy', '-c', '-f', file], { stdout: 'pipe', stderr: 'pipe' })
  if (check.exitCode !== 0) throw new Error(`haproxy -c: ${check.stdout.toString()}${check.stderr.toString()}`)
  const proc = Bun.spawn(['haproxy', '-db', '-f', file], { stdout: 'ignore', stderr: 'pipe' })
  running.add(proc)
  let log = ''
  void (async () => {
    for await (const chunk of proc.stderr) log = (log + new TextDecoder().decode(chunk)).slice(-20_000)
  })()
  await waitFor('haproxy to listen', async () => {
    const s = await Bun.connect({ hostname: '127.0.0.1', port, socket: { data() {} } }).catch(() => undefined)
    s?.end()
    return !!s
  }, 10_000, 50)
  return {
    proc,
    get log() {
      return log
    },
    async stop() {
      proc.kill('SIGTERM')
      await proc.exited
      running.delete(proc)
    },
  }
}

