# Node.js: fs, an http server and client, child_process and worker_threads.
set -eu
cat > /tmp/app.js <<'JS'
const fs = require('fs'), http = require('http'), cp = require('child_process'), crypto = require('crypto');
const { Worker } = require('worker_threads');
fs.mkdirSync('/tmp/n', { recursive: true });
for (let i = 0; i < 200; i++) fs.writeFileSync(`/tmp/n/f${i}.txt`, `file ${i}\n`.repeat(i + 1));
const names = fs.readdirSync('/tmp/n').sort();
let bytes = 0;
for (const n of names) bytes += fs.readFileSync('/tmp/n/' + n).length;
console.log('fs:', names.length, 'files', bytes, 'bytes');
console.log('child:', cp.execSync('echo from a child; exit 0').toString().trim());
const r = cp.spawnSync('/bin/sh', ['-c', 'head -c 3000000 /dev/zero | wc -c; exit 3']);
console.log('spawnSync:', r.stdout.toString().trim(), 'status', r.status);
const work = (n) => new Promise((res, rej) => {
  const w = new Worker(`const { parentPort, workerData } = require('worker_threads');
    let s = 0n; for (let i = 0; i < workerData; i++) s += BigInt(i) * BigInt(i);
    parentPort.postMessage(s.toString());`, { eval: true, workerData: n });
  w.on('message', res); w.on('error', rej);
});
Promise.all([100000, 200000, 300000, 400000].map(work)).then((sums) => {
  console.log('workers:', sums.join(' '));
  const server = http.createServer((req, res) => {
    if (req.url === '/big') { res.end(Buffer.alloc(2 << 20, 'z')); return; }
    res.end('echo ' + req.url);
  });
  server.listen(0, '127.0.0.1', async () => {
    const port = server.address().port;
    const get = (p) => new Promise((res, rej) => http.get({ host: '127.0.0.1', port, path: p }, (resp) => {
      const chunks = []; resp.on('data', (c) => chunks.push(c)); resp.on('end', () => res(Buffer.concat(chunks)));
    }).on('error', rej));
    let ok = 0;
    for (let batch = 0; batch < 10; batch++) {
      const got = await Promise.all(Array.from({ length: 20 }, (_, i) => get(`/r${batch}-${i}`)));
      got.forEach((b, i) => { if (b.toString() === `echo /r${batch}-${i}`) ok++; });
    }
    const big = await get('/big');
    console.log('http:', ok, 'of 200 ok; big', big.length, crypto.createHash('sha256').update(big).digest('hex').slice(0, 16));
    server.close();
  });
});
JS
node /tmp/app.js
