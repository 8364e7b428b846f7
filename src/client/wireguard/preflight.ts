/**
 * What the agent needs from this machine before it registers, creates or joins anything: the right to create a
 * network interface (root, or the CAP_NET_ADMIN capability), the `ip` and `wg` commands, and WireGuard itself
 * (the kernel module, or wireguard-go). Without these `lanrage up` used to create the party, print its id, and
 * only then fail in wireguard-go's own words; now it stops first with one line saying what is missing.
 *
 * `preflightProblem` is pure (tests give it facts); `machineFacts` reads them from this machine (Linux).
 */
import { accessSync, constants, existsSync, readFileSync } from 'node:fs'
import { release } from 'node:os'
import { delimiter, join } from 'node:path'
import { LanrageError } from '../../shared/errors.ts'

/** capabilities(7): CAP_NET_ADMIN is bit 12 of the capability sets in /proc/self/status. */
export const CAP_NET_ADMIN = 12

export interface PreflightFacts {
  /** Effective user id (undefined where the platform has none). */
  uid: number | undefined
  /** The effective capability set (CapEff), undefined when unknown. */
  capEff: bigint | undefined
  /** Whether a command is an executable file on PATH. */
  onPath(command: string): boolean
  /** Whether the kernel has WireGuard (loaded, built in, or a module it can load). */
  kernelWireGuard: boolean
}

export class PreflightError extends LanrageError {}

/** The first thing this machine lacks for the agent, as the error `lanrage up` prints; undefined when nothing. */
export function preflightProblem(f: PreflightFacts, iface: string): PreflightError | undefined {
  const admin = f.uid === 0 || (f.capEff !== undefined && (f.capEff >> BigInt(CAP_NET_ADMIN)) & 1n) === 1n
  if (!admin)
    return new PreflightError(
      'NEEDS_PRIVILEGES',
      `needs root (or the CAP_NET_ADMIN capability) to create the WireGuard interface ${iface}; run it with sudo`,
      403,
    )
  const tools = [
    ['ip', 'iproute2'],
    ['wg', 'wireguard-tools'],
  ].filter(([cmd]) => !f.onPath(cmd!))
  if (tools.length)
    return new PreflightError(
      'NEEDS_TOOLS',
      `needs ${tools.map(([cmd]) => `\`${cmd}\``).join(' and ')} on PATH (Debian: apt-get install ${tools.map(([, pkg]) => pkg).join(' ')})`,
      500,
    )
  if (!f.kernelWireGuard && !f.onPath('wireguard-go'))
    return new PreflightError(
      'NEEDS_WIREGUARD',
      'needs WireGuard: this kernel has no wireguard module and wireguard-go is not on PATH (Debian: apt-get install wireguard-go)',
      500,
    )
  return undefined
}

function onPath(command: string, path: string): boolean {
  return path
    .split(delimiter)
    .filter(Boolean)
    .some((dir) => {
      try {
        accessSync(join(dir, command), constants.X_OK)
        return true
      } catch {
        return false
      }
    })
}

/** CapEff from /proc/self/status (hex), undefined off Linux. */
function effectiveCapabilities(): bigint | undefined {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))
    return m ? BigInt('0x' + m[1]) : undefined
  } catch {
    return undefined
  }
}

/** Loaded or built in (/sys/module/wireguard), or listed among the kernel's modules so `ip link add` loads it. */
function kernelHasWireGuard(): boolean {
  if (existsSync('/sys/module/wireguard')) return true
  const dir = `/lib/modules/${release()}`
  for (const file of ['modules.dep', 'modules.builtin'])
    try {
      if (/(^|\/)wireguard\.ko/m.test(readFileSync(join(dir, file), 'utf8'))) return true
    } catch {
      // no such list: not there
    }
  return false
}

/** The facts of this machine, with the PATH the agent will run `ip`, `wg` and wireguard-go with. */
export function machineFacts(env: Record<string, string | undefined> = process.env): PreflightFacts {
  const path = env.PATH ?? ''
  return {
    uid: process.geteuid?.(),
    capEff: effectiveCapabilities(),
    onPath: (cmd) => onPath(cmd, path),
    kernelWireGuard: kernelHasWireGuard(),
  }
}
