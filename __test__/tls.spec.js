"use strict";

// listen() over TLS: Node's tls options (key, cert, ...) make the native
// listener serve HTTPS and WSS itself, with real certificates made here by
// openssl and real clients (engine.io-client, Node's tls).

const { test, after } = require("node:test");
const assert = require("node:assert/strict");
const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const tls = require("node:tls");
const { listen } = require("..");
const { Socket: ClientSocket } = require("engine.io-client");
const { once, stop } = require("./helpers");

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "eio-rs-tls-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A throwaway self-signed P-256 certificate for `cn`, valid for 127.0.0.1 too. */
function selfSigned(cn) {
  const keyPath = path.join(dir, `${cn}.key`);
  const certPath = path.join(dir, `${cn}.crt`);
  execFileSync(
    "openssl",
    [
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
      ["-days", "1", "-subj", `/CN=${cn}`, "-addext", `subjectAltName=DNS:${cn},IP:127.0.0.1`],
      ["-keyout", keyPath, "-out", certPath],
    ].flat(),
    { stdio: "ignore" },
  );
  return { key: fs.readFileSync(keyPath), cert: fs.readFileSync(certPath) };
}

const first = selfSigned("localhost");
const second = selfSigned("second.localhost");

function startTls(opts) {
  return new Promise((resolve, reject) => {
    const engine = listen(0, opts, () =>
      resolve({ engine, port: engine.httpServer.address().port }),
    );
    engine.httpServer.once("error", reject);
  });
}

/** The subject CN of the certificate a fresh TLS connection to `port` gets. */
function peerName(port) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ port, host: "127.0.0.1", rejectUnauthorized: false }, () => {
      const cn = socket.getPeerCertificate().subject.CN;
      socket.end();
      resolve(cn);
    });
    socket.on("error", reject);
  });
}

/** Echoes a text and a binary message with engine.io-client over `transports`. */
async function echo(port, transports, ca) {
  const client = new ClientSocket(`https://127.0.0.1:${port}`, { transports, ca });
  await once(client, "open");
  if (transports.length > 1) await once(client, "upgrade");
  client.send("hello");
  const [text] = await once(client, "message");
  client.send(Buffer.from([1, 2, 3]));
  const [binary] = await once(client, "message");
  const name = client.transport.name;
  client.close();
  return { text, binary: Buffer.from(binary), name };
}

test("engine.io-client over https and wss: polling, WebSocket, and the upgrade", async () => {
  const { engine, port } = await startTls({ key: first.key, cert: first.cert });
  const seen = [];
  engine.on("connection", (socket) => {
    seen.push(socket.request.socket.encrypted);
    socket.on("message", (m) => socket.send(m));
  });
  for (const transports of [["polling"], ["websocket"], ["polling", "websocket"]]) {
    const got = await echo(port, transports, first.cert);
    assert.equal(got.text, "hello");
    assert.deepEqual([...got.binary], [1, 2, 3]);
    assert.equal(got.name, transports[transports.length - 1]);
  }
  assert.deepEqual(seen, [true, true, true], "socket.request.socket.encrypted");
  await stop(engine);
});

test("setSecureContext() swaps the certificate for new connections; open sessions stay", async () => {
  const { engine, port } = await startTls({ key: first.key, cert: first.cert });
  engine.on("connection", (socket) => socket.on("message", (m) => socket.send(m)));
  assert.equal(await peerName(port), "localhost");
  const open = new ClientSocket(`https://127.0.0.1:${port}`, {
    transports: ["websocket"],
    ca: first.cert,
  });
  await once(open, "open");
  engine.httpServer.setSecureContext({ key: second.key, cert: second.cert });
  assert.equal(await peerName(port), "second.localhost");
  open.send("still here");
  assert.deepEqual(await once(open, "message"), ["still here"]);
  open.close();
  // A bad context is refused, naming the option, and changes nothing.
  assert.throws(
    () => engine.httpServer.setSecureContext({ key: "junk", cert: second.cert }),
    (err) => err.code === "ERR_EIO_TLS_OPTION" && err.option === "key",
  );
  assert.equal(await peerName(port), "second.localhost");
  await stop(engine);
});

test("options eio-rs cannot honour fail at listen(), naming the option", () => {
  const cases = [
    [{ key: first.key, cert: first.cert, ciphers: "HIGH" }, "ciphers"],
    [{ pfx: Buffer.from("x") }, "pfx"],
    [{ key: first.key, cert: first.cert, passphrase: "secret" }, "passphrase"],
    [{ key: "not a key", cert: first.cert }, "key"],
    [{ key: first.key, cert: "not a certificate" }, "cert"],
    [{ key: second.key, cert: first.cert }, "key"],
    [{ key: first.key, cert: first.cert, minVersion: "TLSv1" }, "minVersion"],
  ];
  for (const [opts, option] of cases) {
    assert.throws(
      () => listen(0, opts),
      (err) => err.code === "ERR_EIO_TLS_OPTION" && err.option === option,
      `expected an error naming ${option}`,
    );
  }
});

test("garbage, a handshake that never ends, and a wrong SNI harm nobody else", async () => {
  const { engine, port } = await startTls({
    key: first.key,
    cert: first.cert,
    handshakeTimeout: 300,
  });
  engine.on("connection", (socket) => socket.on("message", (m) => socket.send(m)));
  // Read what the server sends (a TLS alert), so that its end is seen.
  const closed = (socket) => new Promise((resolve) => socket.on("close", resolve).resume());
  // Not TLS at all: the connection is closed.
  const garbage = net.connect(port, "127.0.0.1", () => garbage.write("GET / HTTP/1.1\r\n\r\n"));
  garbage.on("error", () => {});
  await closed(garbage);
  // 500 clients that connect and say nothing: each closed after handshakeTimeout.
  const silent = [];
  for (let i = 0; i < 500; i++) {
    const s = net.connect(port, "127.0.0.1");
    s.on("error", () => {});
    silent.push(closed(s));
  }
  // Meanwhile, a real client is served.
  assert.equal((await echo(port, ["polling", "websocket"], first.cert)).text, "hello");
  await Promise.all(silent);
  // Any server name gets the one certificate, as from Node without SNICallback.
  const sni = tls.connect({ port, host: "127.0.0.1", servername: "other.example", ca: first.cert });
  const [err] = await once(sni, "error");
  assert.match(err.message, /other\.example/, "the client refuses a certificate for another name");
  sni.destroy();
  assert.equal((await echo(port, ["websocket"], first.cert)).text, "hello");
  await stop(engine);
});

test("requestCert: a client without a certificate is refused unless rejectUnauthorized is false", async () => {
  const opts = { key: first.key, cert: first.cert, ca: first.cert, requestCert: true };
  const strict = await startTls(opts);
  const refused = tls.connect({ port: strict.port, host: "127.0.0.1", ca: first.cert });
  refused.on("error", () => {});
  refused.on("secureConnect", () => refused.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  await new Promise((resolve) => refused.on("close", resolve));
  await stop(strict.engine);
  const lenient = await startTls({ ...opts, rejectUnauthorized: false });
  lenient.engine.on("connection", (socket) => socket.on("message", (m) => socket.send(m)));
  assert.equal((await echo(lenient.port, ["polling"], first.cert)).text, "hello");
  await stop(lenient.engine);
});
