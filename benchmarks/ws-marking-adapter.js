// The shared harness's adapter for the `ws` peer, run as a custom server so that it
// writes BENCH_PALAVER_MARK at the first send, as palaver-adapter.js does: the
// instruction counts of perf-fanout.sh then cover the same window for both servers.
const path = require('path');

const inner = require(path.join(process.env.BENCH_DIR, 'adapters', 'ws.js'));
let marked = false;

exports.connect = async (url, name, onMessage, onError) => {
  const c = await inner.connect(url, name, onMessage, onError);
  const send = c.send;
  c.send = (body) => {
    const mark = process.env.BENCH_PALAVER_MARK;
    if (mark && !marked) {
      marked = true;
      require('fs').writeFileSync(mark, String(Date.now()));
    }
    return send(body);
  };
  return c;
};
