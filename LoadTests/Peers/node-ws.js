// Peer: Node's `ws` (Debian package node-ws). Usage: node node-ws.js PORT
// /v1/echo sends every message back; /v1/broadcast sends every text message to every other open broadcast socket,
// encoded once (ws.send of one Buffer); other paths get 404. The contract is in README.md.
'use strict';
const http = require('http');
const { WebSocketServer, WebSocket } = require('/usr/share/nodejs/ws');

const port = parseInt(process.argv[2], 10);
if (!Number.isInteger(port)) {
  console.error('usage: node node-ws.js PORT');
  process.exit(2);
}
const options = { noServer: true, perMessageDeflate: false, maxPayload: 1 << 20 };
const echo = new WebSocketServer(options);
const broadcast = new WebSocketServer({ ...options, clientTracking: true });

// A socket error (a message over maxPayload, a bad frame) closes that socket; without a listener it would end the
// process.
const ignore = () => {};

echo.on('connection', (ws) => {
  ws.on('error', ignore);
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});

broadcast.on('connection', (ws) => {
  ws.on('error', ignore);
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    // `data` is one Buffer; every receiver gets the same bytes, framed per socket by ws.
    for (const other of broadcast.clients) {
      if (other !== ws && other.readyState === WebSocket.OPEN) other.send(data, { binary: false });
    }
  });
});

const server = http.createServer((req, res) => {
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found\n');
});
server.on('upgrade', (req, socket, head) => {
  const path = (req.url || '').split('?')[0];
  const target = path === '/v1/echo' ? echo : path === '/v1/broadcast' ? broadcast : null;
  if (target === null) {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  target.handleUpgrade(req, socket, head, (ws) => target.emit('connection', ws, req));
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`node-ws listening on 127.0.0.1:${port}\n`);
});

function stop() {
  for (const wss of [echo, broadcast]) for (const ws of wss.clients) ws.terminate();
  server.close(() => process.exit(0));
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
