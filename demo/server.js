"use strict";

// The eio-rs demo: an echo server on the native listener, and a page that
// talks to it with the real engine.io-client (polling first, then the upgrade
// to WebSocket).
//
//   node demo/server.js [port] [pagePort]
//
// The engine listens on `port` (default 3000, or $PORT) and the page is served
// on `pagePort` (default port + 1, or $PAGE_PORT). Port 0 picks a free port;
// with `port` 0 the page gets a free port too. Once both listen, the server
// prints, one per line:
//
//   eio-rs engine listening on http://localhost:PORT/engine.io/
//   demo page on http://localhost:PORT/
//
// (__test__/demo-browser.spec.js reads these lines.) Ctrl-C stops it.

const http = require("http");
const fs = require("fs");
const path = require("path");
const { listen } = require("..");

function portArg(value, name) {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`demo: ${name} must be a port number (0 for a free one), got ${value}`);
    process.exit(2);
  }
  return port;
}

const port = portArg(process.argv[2] || process.env.PORT || 3000, "port");
const pagePortArg = process.argv[3] || process.env.PAGE_PORT;
const wantedPagePort =
  pagePortArg !== undefined ? portArg(pagePortArg, "pagePort") : port === 0 ? 0 : port + 1;

// The page is served from another port than the engine, so the page's polling
// requests are cross-origin: the engine answers them with CORS headers for the
// page's origin, whichever host name the browser used to reach it.
let pagePort = null;
function isPageOrigin(origin) {
  if (!origin || pagePort === null) return false;
  try {
    const url = new URL(origin);
    return url.protocol === "http:" && Number(url.port) === pagePort;
  } catch {
    return false;
  }
}

const engine = listen(
  port,
  {
    pingInterval: 10000,
    cors: { origin: (origin, callback) => callback(null, isPageOrigin(origin)) },
  },
  () => {
    const enginePort = engine.httpServer.address().port;
    console.log(`eio-rs engine listening on http://localhost:${enginePort}/engine.io/`);
    servePage(enginePort);
  },
);

engine.httpServer.on("error", (err) => {
  console.error(`demo: the engine cannot listen on port ${port}: ${err.message}`);
  process.exitCode = 1;
  shutdown();
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
// comes from a small Node server next to it, started once the engine's port is
// known (the page is written with it).
const clientBundle = require.resolve("engine.io-client/dist/engine.io.min.js");
const template = fs.readFileSync(path.join(__dirname, "index.html"), "utf8");
let pages = null;

function servePage(enginePort) {
  const page = template.replace(/__ENGINE_PORT__/g, String(enginePort));
  pages = http.createServer((req, res) => {
    const url = req.url.split("?")[0];
    if (url === "/engine.io.min.js") {
      res.writeHead(200, { "Content-Type": "application/javascript; charset=utf-8" });
      fs.createReadStream(clientBundle).pipe(res);
    } else if (url === "/" || url === "/index.html") {
      res.writeHead(200, {
        "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": "no-store",
      });
      res.end(page);
    } else if (url === "/favicon.ico") {
      res.writeHead(204).end();
    } else {
      res.writeHead(404, { "Content-Type": "text/plain" }).end("not found\n");
    }
  });
  pages.on("error", (err) => {
    console.error(`demo: the page cannot listen on port ${wantedPagePort}: ${err.message}`);
    process.exitCode = 1;
    shutdown();
  });
  pages.listen(wantedPagePort, () => {
    pagePort = pages.address().port;
    console.log(`demo page on http://localhost:${pagePort}/`);
  });
}

// Closes everything; the process then exits by itself. A second signal
// exits at once.
let stopping = false;
function shutdown() {
  if (stopping) process.exit(process.exitCode || 1);
  stopping = true;
  engine.close();
  if (engine.httpServer.listening) engine.httpServer.close();
  if (pages && pages.listening) {
    pages.close();
    pages.closeAllConnections();
  }
}
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);
