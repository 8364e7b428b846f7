/**
 * `lanrage down`: stops the running agent (SIGTERM: it leaves the party and removes its interface). If the agent
 * died without cleaning up, does the cleanup itself: removes the interface and leaves the party with the key.
 */
import { Type } from '@sinclair/typebox'
import { runCommand } from '../shared/command.ts'
import type { CommandSpec } from '../shared/config.ts'
import { createLogger } from '../shared/log.ts'
import { safeText } from '../shared/terminal.ts'
import { RemoteControlPlane } from '../client/control/remote.ts'
import { IFNAME_RE } from '../client/wireguard/iface.ts'
import { alive, loadOrCreateKey, readStatusFile, removeStatusFile } from '../client/agent/state.ts'
import { readCaFile } from '../shared/tls.ts'

export const spec = {
  name: 'down',
  summary: 'stop the running agent: leave the party and remove the WireGuard interface',
  settingsFrom: false,
  schema: Type.Object({
    timeout: Type.Integer({ default: 10, minimum: 1, maximum: 300, description: 'seconds to wait for the agent before killing it', settings: false }),
  }),
} satisfies CommandSpec<any>

export async function main(argv: string[]): Promise<number> {
  return runCommand(spec, { argv, env: process.env }, async (cfg) => {
    const s = readStatusFile()
    if (!s) {
      console.error('lanrage down: no agent is running')
      return 1
    }
    if (alive(s.pid)) {
      process.kill(s.pid, 'SIGTERM')
      const deadline = Date.now() + cfg.timeout * 1000
      while (alive(s.pid) && Date.now() < deadline) await Bun.sleep(50)
      if (!alive(s.pid) && !readStatusFile()) {
        console.log(`stopped agent ${s.pid}`)
        return 0
      }
      if (alive(s.pid)) process.kill(s.pid, 'SIGKILL')
    }
    // The agent is gone without cleaning up after itself: do it here.
    const log = createLogger('down')
    if (IFNAME_RE.test(s.interface) && Bun.spawnSync(['ip', 'link', 'show', 'dev', s.interface]).exitCode === 0) {
      const r = Bun.spawnSync(['ip', 'link', 'delete', 'dev', s.interface])
      console.log(safeText(r.exitCode === 0 ? `removed interface ${s.interface}` : `could not remove ${s.interface}: ${r.stderr.toString().trim()}`))
    }
    if (s.party && s.control) {
      const tls = s.ca_file ? readCaFile(s.ca_file) : undefined
      const control = new RemoteControlPlane({ url: s.control, privateKey: loadOrCreateKey(), log, retry: { attempts: 2 }, tls })
      const r = await control.leaveParty(s.party.party_id).catch((e) => `not left: ${(e as Error).message}`)
      await control.close()
      // The party id came from the server and `r` may quote its error message.
      console.log(safeText(`party ${s.party.party_id}: ${r}`))
    }
    removeStatusFile()
    console.log(`cleaned up after agent ${s.pid}`)
    return 0
  })
}
