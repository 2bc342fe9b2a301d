// Peer: Node's `ws` (Debian package node-ws) echoing text and binary at /v1/echo. Usage: node node-ws-echo.js PORT
const { WebSocketServer } = require('/usr/share/nodejs/ws');
const port = parseInt(process.argv[2] || '18081', 10);
const wss = new WebSocketServer({ host: '127.0.0.1', port, path: '/v1/echo', perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
wss.on('listening', () => console.log(`node-ws listening on 127.0.0.1:${port}`));
