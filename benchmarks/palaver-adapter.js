// Adapter for the shared fan-out harness (../shared/bench/fanout.js): speaks Palaver's
// native protocol (docs/protocol.md) with authentication and persistence on.
//
// connect(url, name, onMessage, onError) registers (or logs in) the user `name` over REST,
// opens /ws?token=..., resumes, and resolves to {join(room), send(body)}:
//   join(room)  joins the room by name with a `join` frame, creating it on first use
//               (`create_room`, then `join` again when another member won the race);
//   send(body)  sends a `send` frame whose content is `body`;
//   onMessage   is called with `content` of every `message` frame of kind `text`.
const path = require('path');

// `ws` lives in the harness's node_modules, not next to this file: resolve it from the
// generator that loaded us (require.main is fanout.js), then from BENCH_DIR, then normally.
function loadWs() {
  const tries = [];
  if (require.main) tries.push(() => require.main.require('ws'));
  if (process.env.BENCH_DIR) tries.push(() => require(path.join(process.env.BENCH_DIR, 'node_modules', 'ws')));
  tries.push(() => require('ws'));
  let last;
  for (const t of tries) { try { return t(); } catch (e) { last = e; } }
  throw last;
}
const WebSocket = loadWs();

// Profiling aid: when BENCH_PALAVER_MARK names a file, it is written at the first send,
// so a profiler can attach to the server once set-up is over.
const MARK = process.env.BENCH_PALAVER_MARK;
let marked = false;
const PASSWORD = process.env.BENCH_PALAVER_PASSWORD || 'Bench-Pass-9x';

function httpBase(wsUrl) {
  const u = new URL(wsUrl);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  return `${u.protocol}//${u.host}`;
}

// The harness starts the generator once the port accepts connections, or after 10 s:
// a Python server still importing on a busy core may need longer, so connection
// refusals are retried for up to a minute.
async function post(base, route, body) {
  const deadline = Date.now() + 60000;
  for (let attempt = 0; ; attempt++) {
    let res;
    try {
      res = await fetch(base + route, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
      });
    } catch (e) {
      if (Date.now() < deadline) { await new Promise((r) => setTimeout(r, Math.min(1000, 100 * (attempt + 1)))); continue; }
      throw e;
    }
    const data = await res.json().catch(() => ({}));
    return { status: res.status, data };
  }
}

async function token(base, name) {
  const reg = await post(base, '/api/auth/register', { username: name, password: PASSWORD });
  if (reg.status === 201) return reg.data.access_token || reg.data.token;
  // Already registered (a reused data dir): log in instead.
  const login = await post(base, '/api/auth/login', { login: name, password: PASSWORD });
  if (login.status === 200) return login.data.access_token || login.data.token;
  throw new Error(`cannot register or log in ${name}: ${reg.status} ${JSON.stringify(reg.data)} / ${login.status} ${JSON.stringify(login.data)}`);
}

exports.connect = async (url, name, onMessage, onError) => {
  const base = httpBase(url);
  const access = await token(base, name);
  const sep = url.includes('?') ? '&' : '?';
  const ws = new WebSocket(`${url}${sep}token=${encodeURIComponent(access)}`, { perMessageDeflate: false });
  const pending = new Map(); // frame id -> {resolve, reject}
  let nextId = 0;
  const request = (frame) => new Promise((resolve, reject) => {
    const id = `a${++nextId}`;
    pending.set(id, { resolve, reject });
    ws.send(JSON.stringify({ ...frame, id }));
  });
  const c = {
    conversationId: null,
    async join(room) {
      for (let attempt = 0; attempt < 10; attempt++) {
        try {
          const r = await request({ type: 'join', room });
          c.conversationId = r.conversation.id;
          return;
        } catch (e) {
          if (e.code !== 'NOT_FOUND') throw e;
        }
        try {
          const r = await request({ type: 'create_room', name: room });
          c.conversationId = r.conversation.id; // the creator is its owner, a member already
          return;
        } catch (e) {
          if (e.code !== 'CONFLICT') throw e; // someone else created it first: join it
        }
      }
      throw new Error(`could not join ${room}`);
    },
    send(body) {
      if (MARK && !marked) { marked = true; require('fs').writeFileSync(MARK, String(Date.now())); }
      ws.send(JSON.stringify({ type: 'send', conversation_id: c.conversationId, content: body }));
    },
  };
  ws.on('message', (data) => {
    const f = JSON.parse(data);
    if (f.type === 'message') {
      if (f.kind === 'text') onMessage(f.content);
      return;
    }
    if (f.id !== undefined && f.id !== null && pending.has(f.id)) {
      const p = pending.get(f.id);
      pending.delete(f.id);
      if (f.type === 'error') {
        const err = new Error(`${f.code}: ${f.message}`);
        err.code = f.code;
        p.reject(err);
      } else p.resolve(f);
    } else if (f.type === 'error') {
      onError(new Error(`${f.code}: ${f.message}`));
    }
  });
  return new Promise((resolve, reject) => {
    let opened = false;
    ws.on('error', (e) => { onError(e); if (!opened) reject(e); });
    ws.on('unexpected-response', (_req, res) => {
      const e = new Error(`handshake refused: HTTP ${res.statusCode}`);
      onError(e); reject(e);
    });
    ws.on('open', () => {
      opened = true;
      // Say where we stand at once, so live messages flow without the 0.5 s resume grace.
      ws.send(JSON.stringify({ type: 'resume', cursors: {} }));
      resolve(c);
    });
  });
};
