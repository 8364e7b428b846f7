// The LANrage page: talks to the running agent's local API (same origin) with the token the agent wrote into the
// page, follows its live updates (server-sent events read through fetch, so the token travels in a header), and
// renders everything with textContent: names and messages from the network are never parsed as HTML.
'use strict'

const TOKEN = document.querySelector('meta[name="lanrage-token"]').content
const $ = (id) => document.getElementById(id)
let current = null

// ---- the API

async function api(method, path, body) {
  const init = { method, headers: { 'x-lanrage-token': TOKEN }, cache: 'no-store' }
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json'
    init.body = JSON.stringify(body)
  }
  const res = await fetch(path, init)
  const data = await res.json().catch(() => ({}))
  if (!res.ok) throw new Error(data.error ? data.error.message : `HTTP ${res.status}`)
  return data
}

function showError(e) {
  const el = $('error')
  el.textContent = e ? String(e.message || e) : ''
  el.hidden = !e
}
function notice(text) {
  $('notice').textContent = text || ''
}

/** Runs an action from a form or button: disables it meanwhile, shows what went wrong. */
async function act(control, fn) {
  showError(null)
  if (control) control.disabled = true
  try {
    await fn()
  } catch (e) {
    showError(e)
  } finally {
    if (control) control.disabled = false
  }
}

// ---- live updates

async function live() {
  for (;;) {
    try {
      const res = await fetch('/api/events', { headers: { 'x-lanrage-token': TOKEN }, cache: 'no-store' })
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`)
      setLink(true)
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
      let buf = ''
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        buf += value
        let i
        while ((i = buf.indexOf('\n\n')) >= 0) {
          onEvent(buf.slice(0, i))
          buf = buf.slice(i + 2)
        }
      }
    } catch {
      // the agent restarted or stopped: try again
    }
    setLink(false)
    await new Promise((r) => setTimeout(r, 1000))
  }
}

function onEvent(block) {
  let type = 'message'
  const data = []
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) type = line.slice(6).trim()
    else if (line.startsWith('data:')) data.push(line.slice(5).trimStart())
  }
  if (type === 'status' && data.length) render(JSON.parse(data.join('\n')))
}

function setLink(up) {
  const el = $('link')
  el.dataset.state = up ? 'up' : 'down'
  el.textContent = up ? 'agent running' : 'agent not reachable; retrying…'
}

// ---- formatting (as `lanrage status` shows them)

function bytes(n) {
  if (typeof n !== 'number' || n < 0) return '–'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`
}
function latency(ms) {
  return typeof ms === 'number' ? `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms` : '–'
}
function age(iso) {
  const t = iso ? Date.parse(iso) : NaN
  if (Number.isNaN(t)) return 'never'
  const s = Math.max(0, Math.round((Date.now() - t) / 1000))
  return s < 120 ? `${s} s ago` : s < 7200 ? `${Math.floor(s / 60)} min ago` : `${Math.floor(s / 3600)} h ago`
}
const PATHS = { direct: 'direct', relay: 'relayed', connecting: 'connecting…' }

// ---- rendering

function render(s) {
  const before = current && current.state
  current = s
  const self = s.self
  $('me').textContent = self ? `${self.name || 'no name'} · ${self.peer_id}${self.virtual_ip ? ' · ' + self.virtual_ip : ''}` : ''
  $('idle').hidden = s.state !== 'idle'
  $('busy').hidden = s.state !== 'starting' && s.state !== 'leaving'
  $('party').hidden = s.state !== 'in_party'
  $('busy-text').textContent = s.state === 'leaving' ? 'Leaving the party…' : 'Connecting to the party…'
  if (s.state === 'idle' && s.message) notice(s.message)
  else if (s.state === 'in_party') notice('')
  if (s.state === 'in_party' && s.party) {
    $('party-name').textContent = s.party.name
    $('party-id').textContent = s.party.party_id
    $('self-line').textContent = self ? `You are ${self.name || self.peer_id} at ${self.virtual_ip}${s.party.host_id === self.peer_id ? ' (host)' : ''}; NAT ${self.nat_type.replace(/_/g, ' ')}.` : ''
    renderMembers(s)
    if (before !== 'in_party') $('party-title').focus()
  }
}

function renderMembers(s) {
  const rows = $('member-rows')
  const seen = new Set()
  for (const p of s.peers) {
    seen.add(p.peer_id)
    let tr = rows.querySelector(`tr[data-peer-id="${CSS.escape(p.peer_id)}"]`)
    if (!tr) {
      tr = document.createElement('tr')
      tr.dataset.peerId = p.peer_id
      for (const f of ['name', 'ip', 'path', 'latency', 'handshake', 'rx', 'tx']) {
        const td = document.createElement(f === 'name' ? 'th' : 'td')
        if (f === 'name') td.scope = 'row'
        td.className = f
        tr.append(td)
      }
      rows.append(tr)
    }
    const cell = (f) => tr.querySelector(`.${f}`)
    cell('name').textContent = (p.name || p.peer_id) + (p.peer_id === s.party.host_id ? ' (host)' : '')
    cell('name').title = p.peer_id
    cell('ip').textContent = p.virtual_ip
    cell('path').textContent = PATHS[p.path] || p.path
    cell('path').dataset.path = p.path
    cell('path').title = p.endpoint || ''
    cell('latency').textContent = latency(p.latency_ms)
    cell('handshake').textContent = age(p.latest_handshake)
    cell('rx').textContent = bytes(p.rx_bytes)
    cell('tx').textContent = bytes(p.tx_bytes)
  }
  for (const tr of [...rows.children]) if (!seen.has(tr.dataset.peerId)) tr.remove()
  $('alone').hidden = s.peers.length > 0
}

// Handshake ages move with the clock, not only with updates.
setInterval(() => {
  if (current && current.state === 'in_party') for (const p of current.peers) {
    const td = document.querySelector(`tr[data-peer-id="${CSS.escape(p.peer_id)}"] .handshake`)
    if (td) td.textContent = age(p.latest_handshake)
  }
}, 1000)

// ---- the party

/** Creates or joins: the page shows "connecting" until the agent answers, then the party or the reason. */
function enter(form, path, body) {
  act(form.querySelector('button'), async () => {
    render({ ...current, state: 'starting' })
    try {
      render(await api('POST', path, body))
    } catch (e) {
      render(await api('GET', '/api/status'))
      throw e
    }
  })
}

$('create-form').addEventListener('submit', (ev) => {
  ev.preventDefault()
  const f = ev.target
  const body = { name: f.name.value.trim() }
  if (f.password.value) body.password = f.password.value
  if (f.max_peers.value) body.max_peers = Number(f.max_peers.value)
  enter(f, '/api/party', body)
})

$('join-form').addEventListener('submit', (ev) => {
  ev.preventDefault()
  const f = ev.target
  const body = { party_id: f.party_id.value.trim().toLowerCase() }
  if (f.password.value) body.password = f.password.value
  enter(f, '/api/party/join', body)
})

$('leave').addEventListener('click', (ev) => act(ev.target, async () => render(await api('POST', '/api/party/leave'))))

$('copy').addEventListener('click', async () => {
  const id = $('party-id').textContent
  try {
    await navigator.clipboard.writeText(id)
  } catch {
    // no clipboard permission: select the id so Ctrl+C copies it
    const range = document.createRange()
    range.selectNodeContents($('party-id'))
    getSelection().removeAllRanges()
    getSelection().addRange(range)
  }
  $('copied').textContent = 'copied'
  setTimeout(() => ($('copied').textContent = ''), 2000)
})

// ---- views

function show(view) {
  for (const v of ['party', 'settings']) {
    $(`view-${v}`).hidden = v !== view
    if (v === view) $(`tab-${v}`).setAttribute('aria-current', 'page')
    else $(`tab-${v}`).removeAttribute('aria-current')
  }
  if (view === 'settings') act(null, loadSettings)
}
$('tab-party').addEventListener('click', () => show('party'))
$('tab-settings').addEventListener('click', () => show('settings'))

// ---- settings

function cells(tr, values) {
  for (const v of values) {
    const td = document.createElement('td')
    td.textContent = v
    tr.append(td)
  }
}
function deleteButton(tr, label, fn) {
  const td = document.createElement('td')
  const b = document.createElement('button')
  b.type = 'button'
  b.textContent = 'Delete'
  b.setAttribute('aria-label', `Delete ${label}`)
  b.addEventListener('click', () => act(b, async () => {
    await fn()
    await loadSettings()
  }))
  td.append(b)
  tr.append(td)
}
const enc = encodeURIComponent

async function loadSettings() {
  const [st, fav, prof, srv] = await Promise.all([
    api('GET', '/api/settings'),
    api('GET', '/api/favorites'),
    api('GET', '/api/game-profiles'),
    api('GET', '/api/server-configs'),
  ])
  const name = st.settings.find((r) => r.key === 'up.name')
  $('name-form').name.value = name && typeof name.value === 'string' ? name.value : ''
  $('name-form').name.placeholder = current && current.self && current.self.name ? current.self.name : ''
  $('setting-rows').replaceChildren(...st.settings.map((r) => {
    const tr = document.createElement('tr')
    cells(tr, [r.key, r.type, r.type === 'string' ? r.value : JSON.stringify(r.value)])
    deleteButton(tr, r.key, () => api('DELETE', `/api/settings/${enc(r.key)}`))
    return tr
  }))
  $('favorite-rows').replaceChildren(...fav.favorites.map((r) => {
    const tr = document.createElement('tr')
    cells(tr, [r.name, r.address, r.game || ''])
    deleteButton(tr, r.name, () => api('DELETE', `/api/favorites/${enc(r.address)}`))
    return tr
  }))
  $('profile-rows').replaceChildren(...prof.game_profiles.map((r) => {
    const tr = document.createElement('tr')
    cells(tr, [r.name, r.game, JSON.stringify(r.profile)])
    deleteButton(tr, r.name, () => api('DELETE', `/api/game-profiles/${enc(r.name)}`))
    return tr
  }))
  $('server-rows').replaceChildren(...srv.server_configs.map((r) => {
    const tr = document.createElement('tr')
    cells(tr, [r.name, r.mode, r.enabled ? 'yes' : 'no', JSON.stringify(r.config)])
    deleteButton(tr, r.name, () => api('DELETE', `/api/server-configs/${enc(r.name)}`))
    return tr
  }))
}

/** A JSON textarea's value, or an error naming the field. */
function jsonField(el, what) {
  try {
    return JSON.parse(el.value)
  } catch {
    throw new Error(`${what} is not valid JSON`)
  }
}

function settingsForm(id, submit) {
  $(id).addEventListener('submit', (ev) => {
    ev.preventDefault()
    const f = ev.target
    act(f.querySelector('button[type=submit]'), async () => {
      await submit(f)
      await loadSettings()
      notice('saved')
    })
  })
}
settingsForm('name-form', (f) => {
  const name = f.name.value.trim()
  return name ? api('PUT', '/api/settings/up.name', { value: name, type: 'string' }) : api('DELETE', '/api/settings/up.name').catch(() => {})
})
settingsForm('setting-form', (f) => api('PUT', `/api/settings/${enc(f.key.value.trim())}`, { text: f.text.value, ...(f.type.value ? { type: f.type.value } : {}) }))
settingsForm('favorite-form', (f) => api('POST', '/api/favorites', { name: f.name.value.trim(), address: f.address.value.trim(), ...(f.game.value.trim() ? { game: f.game.value.trim() } : {}) }))
settingsForm('profile-form', (f) => api('PUT', `/api/game-profiles/${enc(f.name.value.trim())}`, { game: f.game.value.trim(), profile: jsonField(f.profile, 'Profile') }))
settingsForm('server-form', (f) => api('PUT', `/api/server-configs/${enc(f.name.value.trim())}`, { mode: f.mode.value, config: jsonField(f.config, 'Options'), enabled: f.enabled.checked }))

// ---- start

api('GET', '/api/status').then(render, showError)
live()
