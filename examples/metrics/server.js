"use strict";

// An Engine.IO server with its metrics on a separate port, next to
// prom-client's default registry (process CPU, memory, event loop lag),
// in one /metrics a Prometheus server can scrape.
//
//   node examples/metrics/server.js [port] [metricsPort]
//   curl http://127.0.0.1:9464/metrics

const http = require("node:http");
const client = require("prom-client");
const { listen } = require("../.."); // require("eio-rs") in your project

const port = Number(process.argv[2] ?? 3000);
const metricsPort = Number(process.argv[3] ?? 9464);

const engine = listen(port, () => {
  console.log(`engine.io on ${engine.httpServer.address().port}`);
});
engine.on("connection", (socket) => socket.on("message", (m) => socket.send(m)));

client.collectDefaultMetrics();

const metrics = http.createServer(async (req, res) => {
  if (req.url !== "/metrics") {
    res.writeHead(404).end();
    return;
  }
  // Both registries write Prometheus' text format 0.0.4, and their names
  // do not clash (eio_ and process_/nodejs_), so one can follow the other.
  const text = (await client.register.metrics()) + engine.metrics();
  res.writeHead(200, { "Content-Type": client.register.contentType }).end(text);
});
metrics.listen(metricsPort, () => {
  console.log(`metrics on ${metrics.address().port}`);
});

// Out of service without cutting clients off: new sessions go elsewhere.
process.on("SIGTERM", async () => {
  const { closed, forced } = await engine.drain({ timeout: 10_000 });
  console.log(`drained: ${closed} closed, ${forced} forced`);
  engine.httpServer.close();
  metrics.close();
});
