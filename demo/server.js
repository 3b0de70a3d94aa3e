"use strict";

// The eio-rs demo: an echo server on the native listener, and a page that
// talks to it with the real engine.io-client.
//
//   node demo/server.js [port]      (default 3000; the page is served on port + 1)

const http = require("http");
const fs = require("fs");
const path = require("path");
const { listen } = require("..");

const port = Number(process.argv[2] || process.env.PORT || 3000);

const engine = listen(port, { pingInterval: 10000 }, () => {
  console.log(`eio-rs engine listening on http://localhost:${port}/engine.io/`);
});

engine.on("connection", (socket) => {
  console.log(`+ ${socket.id} via ${socket.transport.name} from ${socket.remoteAddress}`);
  socket.send(`welcome ${socket.id}`);
  socket.on("message", (data) => socket.send(data));
  socket.on("upgrade", (t) => console.log(`  ${socket.id} upgraded to ${t.name}`));
  socket.on("close", (reason) => console.log(`- ${socket.id} (${reason})`));
});

engine.on("connection_error", (err) => {
  console.log(`! refused ${err.req.url}: ${err.code} ${err.message}`);
});

// The page and the browser build of engine.io-client. The native listener
// answers 501 outside the engine path, like engine.io's listen(), so the page
// comes from a small Node server next to it and connects over WebSocket.
const clientBundle = require.resolve("engine.io-client/dist/engine.io.min.js");
const page = fs.readFileSync(path.join(__dirname, "index.html"), "utf8").replace(/__PORT__/g, port);

const pages = http.createServer((req, res) => {
  if (req.url === "/engine.io.min.js") {
    res.writeHead(200, { "Content-Type": "application/javascript" });
    fs.createReadStream(clientBundle).pipe(res);
  } else if (req.url === "/" || req.url === "/index.html") {
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end(page);
  } else {
    res.writeHead(404).end();
  }
});
pages.listen(port + 1, () => {
  console.log(`demo page on http://localhost:${port + 1}/`);
});

function shutdown() {
  engine.close();
  engine.httpServer.close();
  pages.close();
}
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);
