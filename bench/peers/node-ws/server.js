// A minimal Node `ws` broadcast server, the most common alternative to Corral's fan-out:
// every text message a client sends goes, unchanged, to every connected client (the sender
// included). `node server.js [port]` (default 9002), loopback only.
'use strict';
const { WebSocketServer, WebSocket } = require('ws');

const port = Number(process.argv[2] || 9002);
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false, clientTracking: true });

wss.on('connection', (socket) => {
  socket.on('message', (data, isBinary) => {
    if (isBinary) return;
    // Send the same string to everyone; `ws` frames it per recipient.
    const text = data.toString();
    for (const client of wss.clients) {
      if (client.readyState === WebSocket.OPEN) client.send(text);
    }
  });
  socket.on('error', () => {});
});

wss.on('listening', () => console.error(`node-ws broadcast peer listening on 127.0.0.1:${port}`));
