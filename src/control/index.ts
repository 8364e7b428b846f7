/**
 * `lanrage/control`: the control server, for embedding in a program that runs on Bun (it serves HTTP and
 * WebSocket with Elysia on Bun.serve and keeps its state in bun:sqlite; it does not run under Node).
 *
 *   import { defaultControlConfig, openDatabase, startControl } from 'lanrage/control'
 *   const open = openDatabase('./data/lanrage.db')          // created and migrated on first use
 *   const control = startControl(defaultControlConfig({ port: 8667, relaySecret: 's3cret' }), { open })
 *   console.log(control.url)
 *   // ...
 *   await control.close()
 *   open.close()
 *
 * `lanrage control` and `lanrage serve` run exactly this. `createApp` gives the Elysia app without listening
 * (for an app of your own, or for tests with `app.handle(request)`).
 */
export { startControl, type RunningControl } from './server.ts'
export { createApp, createControl, type Control } from './app.ts'
export { controlSchema, defaultControlConfig, type ControlConfig } from './config.ts'
export type { ControlDeps } from './service.ts'
export { openDatabase, type OpenDb } from '../db/client.ts'
