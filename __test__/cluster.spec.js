"use strict";

// Socket.IO on eio-rs across processes, as examples/cluster/ runs it: three
// backends (two on listen(), one on attach()) sharing rooms through
// @socket.io/redis-adapter on a real redis-server, behind a real HAProxy
// with sticky sessions by an inserted cookie; and Node's `cluster` module
// with attach(), @socket.io/sticky and @socket.io/cluster-adapter.
// Every process is started here, on ports picked here, and ended by PID.

const { describe, it, before, after, test } = require("node:test");
const assert = require("node:assert/strict");
const { fork } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { io: ioc } = require("socket.io-client");
const { Socket: EioSocket } = require("engine.io-client");
const {
  freePort,
  which,
  startRedis,
  startBackend,
  startHaproxy,
  stopProcess,
} = require("../examples/cluster/start");

const root = path.join(__dirname, "..");
const HOST = "127.0.0.1";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits (boundedly) until `check()` is true; fails with `what()` otherwise. */
async function until(check, what, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await sleep(20);
  }
}

/** Every process this file started, ended by PID when it ends (however it ends). */
const started = new Set();
function track(child) {
  started.add(child);
  return child;
}
const alive = (child) => child.exitCode === null && child.signalCode === null;
const tempDirs = new Set();
function killStarted() {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  for (const child of started)
    if (alive(child))
      try {
        process.kill(child.pid, "SIGKILL");
      } catch {}
}
process.on("exit", killStarted);
// Ended by a signal (the runner's timeout, Ctrl-C): no "exit" event then.
for (const signal of ["SIGINT", "SIGTERM"])
  process.once(signal, () => {
    killStarted();
    process.kill(process.pid, signal);
  });

/** Emits `event` with `args`; resolves with every argument of the ack (5 s bound). */
function askAll(socket, event, ...args) {
  return new Promise((resolve, reject) =>
    socket
      .timeout(5000)
      .emit(event, ...args, (err, ...reply) =>
        err ? reject(new Error(`${event}: ${err.message}`)) : resolve(reply),
      ),
  );
}

/** Emits `event` with `args`; resolves with the first argument of the ack. */
async function ask(socket, event, ...args) {
  return (await askAll(socket, event, ...args))[0];
}

/**
 * A socket.io-client that keeps what happened to it. `withCredentials`
 * makes it keep cookies (HAProxy's SERVERID): Node's engine.io-client has
 * a cookie jar only then, and without it every polling request would be
 * balanced anew.
 */
function sioClient(url, kind, opts = {}) {
  const transports = { polling: ["polling"], websocket: ["websocket"] }[kind];
  const socket = ioc(url, {
    forceNew: true,
    withCredentials: true,
    transports,
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
    timeout: 5000,
    ...opts,
  });
  const c = {
    kind,
    socket,
    backend: null,
    connects: 0,
    disconnects: [],
    messages: [],
    relayed: [],
  };
  socket.on("connect", () => c.connects++);
  socket.on("disconnect", (reason) => c.disconnects.push(reason));
  socket.on("room-message", (payload) => c.messages.push(payload));
  socket.on("relayed", (token, from, at) => c.relayed.push({ token, from, at }));
  return c;
}

/** Resolves once `c` is connected and knows its backend. */
async function connected(c) {
  if (!c.socket.connected)
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${c.kind} client: no connect`)), 10_000);
      c.socket.once("connect", () => (clearTimeout(timer), resolve()));
    });
  c.backend = await ask(c.socket, "whoami");
  return c;
}

/**
 * A raw engine.io-client speaking the Socket.IO protocol by hand: CONNECT
 * to "/", then `whoami` as an EVENT with ack id 1.
 */
function rawClient(url, transports) {
  const socket = new EioSocket(url, { path: "/socket.io/", withCredentials: true, transports });
  const c = { kind: `raw ${transports.join("+")}`, socket, backend: null, closes: [] };
  socket.on("close", (reason) => c.closes.push(reason));
  c.ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${c.kind}: no answer`)), 10_000);
    socket.on("open", () => socket.send("0"));
    socket.on("message", (data) => {
      if (data.startsWith("0{")) socket.send('21["whoami"]');
      else if (data.startsWith("31[")) {
        clearTimeout(timer);
        c.backend = JSON.parse(data.slice(2))[0];
        resolve(c);
      }
    });
    socket.on("error", (err) => (clearTimeout(timer), reject(err)));
  });
  return c;
}

/** Asks a backend started by startBackend() for its stats over IPC. */
let statsId = 0;
function stats(backend) {
  return new Promise((resolve, reject) => {
    const id = ++statsId;
    const timer = setTimeout(() => {
      backend.child.off("message", on);
      reject(new Error(`${backend.name}: no stats`));
    }, 5000);
    const on = (m) => {
      if (m && m.type === "stats" && m.id === id) {
        clearTimeout(timer);
        backend.child.off("message", on);
        resolve(m);
      }
    };
    backend.child.on("message", on);
    backend.child.send({ type: "stats", id });
  });
}

function countBy(items, key) {
  const counts = {};
  for (const item of items) counts[key(item)] = (counts[key(item)] || 0) + 1;
  return counts;
}

const missing = ["redis-server", "haproxy"].filter((command) => !which(command));
const skip =
  missing.length > 0 &&
  `${missing.join(" and ")} not on the PATH (apt-get install redis-server haproxy); skipped`;

if (missing.length > 0 && process.env.CI) {
  test("cluster: redis-server and haproxy are installed", () => {
    assert.fail(
      `${missing.join(" and ")} not found on the PATH; .ci/run installs them ` +
        "(apt-get install -y redis-server haproxy)",
    );
  });
}

describe("Socket.IO on eio-rs: 3 backends, Redis adapter, HAProxy", { skip }, () => {
  const dir = !skip && fs.mkdtempSync(path.join(os.tmpdir(), "eio-rs-cluster-test-"));
  if (dir) tempDirs.add(dir);
  let redisPort;
  let redis;
  let url;
  const backends = [];
  const clients = [];
  const raws = [];
  const onChild = track;

  before(async () => {
    redisPort = await freePort();
    redis = await startRedis({ port: redisPort, dir, onChild });
    const redisUrl = `redis://${HOST}:${redisPort}`;
    for (const [name, mode] of [
      ["s1", "listen"],
      ["s2", "attach"],
      ["s3", "listen"],
    ])
      backends.push(
        await startBackend({
          name,
          redisUrl,
          mode,
          onChild,
          // IO_COOKIE: the `io` cookie, for the HAProxy that sticks by sid.
          env: { EIO_RS_PATH: root, IO_COOKIE: "1" },
        }),
      );
    const port = await freePort();
    await startHaproxy({
      port,
      dir,
      onChild,
      checkInterval: 300,
      backends: backends.map(({ name, port }) => ({ name, host: HOST, port })),
    });
    url = `http://${HOST}:${port}`;
  });

  // EIO_RS_CLUSTER_LOG=file: what every process printed, and each client's
  // backend and disconnections, are written there at the end.
  after(async () => {
    for (const c of clients) c.socket.disconnect();
    for (const c of raws) c.socket.close();
    await Promise.all([...started].map((child) => stopProcess(child)));
    if (process.env.EIO_RS_CLUSTER_LOG)
      fs.writeFileSync(
        process.env.EIO_RS_CLUSTER_LOG,
        [...started].map((c) => `=== ${c.spawnargs.join(" ")}\n${c.output}`).join("\n") +
          "\n=== clients\n" +
          JSON.stringify(
            clients.map((c) => [c.kind, c.backend, c.disconnects, c.messages]),
            null,
            0,
          ),
      );
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** The socket.io clients on `name`, as they last said. */
  const on = (name) => clients.filter((c) => c.backend === name);
  const logs = () => backends.map((b) => b.child.output).join("\n");

  it("spreads 60 Socket.IO clients and 6 raw engine.io clients over the 3 backends", async () => {
    const kinds = ["polling", "websocket", "default"];
    // Each run of three clients has every kind, in a different order each
    // time, so that round robin gives every kind every backend.
    for (let i = 0; i < 60; i++) clients.push(sioClient(url, kinds[(i + Math.floor(i / 3)) % 3]));
    for (const transports of [["polling"], ["polling", "websocket"]])
      for (let i = 0; i < 3; i++) raws.push(rawClient(url, transports));
    await Promise.all([...clients.map(connected), ...raws.map((c) => c.ready)]);

    const spread = countBy(clients, (c) => c.backend);
    for (const name of ["s1", "s2", "s3"])
      assert.ok(
        spread[name] >= 10,
        `${name} has ${spread[name]} clients: ${JSON.stringify(spread)}`,
      );
    // Every transport reached every backend.
    for (const kind of kinds)
      assert.equal(
        new Set(clients.filter((c) => c.kind === kind).map((c) => c.backend)).size,
        3,
        kind,
      );
    for (const c of raws) assert.match(c.backend, /^s[123]$/);

    // The backends count the same sockets (the raw clients included).
    const counts = await Promise.all(backends.map(stats));
    const all = countBy([...clients, ...raws], (c) => c.backend);
    for (const s of counts) assert.equal(s.sockets, all[s.name], s.name);

    // The clients that may upgrade did, on the backend that opened their session.
    await until(
      () =>
        clients.every(
          (c) => c.kind !== "default" || c.socket.io.engine.transport.name === "websocket",
        ),
      () => "the upgrades",
    );
    for (const c of clients.filter((c) => c.kind === "default"))
      assert.equal(await ask(c.socket, "whoami"), c.backend);
  });

  it("keeps polling clients on their backend for 100 round trips each", async () => {
    const polling = clients.filter((c) => c.kind === "polling");
    assert.equal(polling.length, 20);
    await Promise.all(
      polling.map(async (c) => {
        for (let i = 0; i < 100; i++) {
          const [value, backend] = await askAll(c.socket, "echo", { i });
          assert.deepEqual(value, { i });
          assert.equal(backend, c.backend, `round trip ${i} answered by another backend`);
        }
        assert.equal(c.socket.io.engine.transport.name, "polling");
      }),
    );
    for (const c of [...clients, ...raws])
      assert.deepEqual(c.disconnects || c.closes, [], `${c.kind} client on ${c.backend}`);
    for (const s of await Promise.all(backends.map(stats)))
      assert.deepEqual(s.connectionErrors, [], `${s.name} refused requests`);
    assert.doesNotMatch(logs(), /Session ID unknown/);
  });

  it("sticky by sid (HAProxy learns the io cookie): clients that keep no cookies stay too", async () => {
    const port = await freePort();
    const haproxy = await startHaproxy({
      port,
      dir,
      onChild,
      sticky: "sid",
      checkInterval: 300,
      backends: backends.map(({ name, port }) => ({ name, host: HOST, port })),
    });
    const kinds = ["polling", "websocket", "default"];
    const plain = [];
    try {
      for (let i = 0; i < 9; i++)
        plain.push(
          sioClient(`http://${HOST}:${port}`, kinds[(i + Math.floor(i / 3)) % 3], {
            withCredentials: false,
            reconnection: false,
          }),
        );
      await Promise.all(plain.map(connected));
      assert.equal(new Set(plain.map((c) => c.backend)).size, 3);
      await Promise.all(
        plain.map(async (c) => {
          for (let i = 0; i < 30; i++) {
            const [value, backend] = await askAll(c.socket, "echo", i);
            assert.equal(value, i);
            assert.equal(backend, c.backend, `${c.kind}: round trip ${i} on another backend`);
          }
        }),
      );
      for (const c of plain) assert.deepEqual(c.disconnects, [], `${c.kind} on ${c.backend}`);
      for (const s of await Promise.all(backends.map(stats)))
        assert.deepEqual(s.connectionErrors, [], `${s.name} refused requests`);
    } finally {
      for (const c of plain) c.socket.disconnect();
      await stopProcess(haproxy);
    }
  });

  const members = () => clients.filter((_, i) => i % 2 === 0);

  it("delivers a room broadcast from one backend to every member on all of them, once", async () => {
    for (const c of members()) assert.equal(await ask(c.socket, "join", "room-a"), c.backend);
    assert.equal(new Set(members().map((c) => c.backend)).size, 3);

    const sender = members().find((c) => c.backend === "s2");
    assert.equal(await ask(sender.socket, "broadcast", "room-a", "first"), "s2");
    await until(
      () => members().every((c) => c.messages.includes("first")),
      () => `"first" at ${members().filter((c) => !c.messages.includes("first")).length} members`,
    );
    await sleep(300); // room for duplicates to show up
    for (const c of clients)
      assert.equal(
        c.messages.filter((m) => m === "first").length,
        members().includes(c) ? 1 : 0,
        `${c.kind} client on ${c.backend}`,
      );
  });

  it("fetchSockets() and serverSideEmit() reach across backends", async () => {
    const asker = clients.find((c) => c.backend === "s3");
    const found = await ask(asker.socket, "fetch-room", "room-a");
    assert.ok(Array.isArray(found), JSON.stringify(found));
    const expected = members().map((c) => ({ id: c.socket.id, backend: c.backend }));
    const byId = (a, b) => (a.id < b.id ? -1 : 1);
    assert.deepEqual(
      found.map(({ id, backend }) => ({ id, backend })).sort(byId),
      expected.sort(byId),
    );
    for (const s of found) assert.ok(s.rooms.includes("room-a"));

    const from = clients.find((c) => c.backend === "s1");
    const replies = await ask(from.socket, "server-emit", "token-1");
    assert.deepEqual([...replies].sort(), ["s2", "s3"]);
    const others = clients.filter((c) => c.backend !== "s1");
    await until(
      () => others.every((c) => c.relayed.some((r) => r.token === "token-1")),
      () => "the relayed event at the clients of s2 and s3",
    );
    await sleep(300);
    for (const c of clients) {
      const got = c.relayed.filter((r) => r.token === "token-1");
      assert.equal(got.length, c.backend === "s1" ? 0 : 1, `client on ${c.backend}`);
      for (const r of got) assert.deepEqual([r.from, r.at], ["s1", c.backend]);
    }
  });

  it("survives a restart of the Redis server: the adapters reconnect, broadcasts resume", async () => {
    const sender = members().find((c) => c.backend === "s3");
    await stopProcess(redis);
    // Without Redis, each backend still serves its own clients, and a
    // broadcast (which waits in node-redis's offline queue) harms nothing.
    for (const name of ["s1", "s2", "s3"])
      assert.equal(await ask(on(name)[0].socket, "whoami"), name);
    assert.equal(await ask(sender.socket, "broadcast", "room-a", "during-outage"), "s3");
    await sleep(500);
    redis = await startRedis({ port: redisPort, dir, onChild });

    // Broadcast until one reaches every member (the adapters subscribe
    // again once their connection is back), for at most 20 s.
    const deadline = Date.now() + 20_000;
    let token;
    for (let n = 0; ; n++) {
      token = `after-restart-${n}`;
      await ask(sender.socket, "broadcast", "room-a", token);
      const sent = Date.now();
      while (Date.now() - sent < 1000 && !members().every((c) => c.messages.includes(token)))
        await sleep(20);
      if (members().every((c) => c.messages.includes(token))) break;
      assert.ok(
        Date.now() < deadline,
        `broadcasts did not resume after Redis restarted\n${logs()}`,
      );
    }
    await sleep(300);
    for (const c of members()) {
      assert.equal(c.messages.filter((m) => m === token).length, 1);
      assert.ok(c.messages.filter((m) => m === "during-outage").length <= 1);
    }
    // Requests across backends work again too.
    assert.deepEqual([...(await ask(sender.socket, "server-emit", "token-2"))].sort(), [
      "s1",
      "s2",
    ]);
    for (const b of backends) assert.ok(alive(b.child), `${b.name} exited`);
    for (const c of clients) assert.deepEqual(c.disconnects, [], `client on ${c.backend}`);
  });

  it("moves the clients of a stopped backend to the others; the others' clients stay", async () => {
    const s3 = backends.find((b) => b.name === "s3");
    const moving = on("s3");
    const staying = clients.filter((c) => c.backend !== "s3");
    assert.ok(moving.length >= 10);
    const rawOnS3 = raws.filter((c) => c.backend === "s3");
    const oldSids = new Set([
      ...moving.map((c) => c.socket.io.engine.id),
      ...rawOnS3.map((c) => c.socket.id),
    ]);
    for (const c of rawOnS3) c.socket.close();
    await sleep(200); // their close packets reach s3 first

    const stopping = Date.now();
    await stopProcess(s3.child);
    // server.js exits by itself once closed (its safety timer is 3 s).
    assert.equal(s3.child.exitCode, 0, s3.child.output);
    assert.ok(Date.now() - stopping < 2500, `s3 took ${Date.now() - stopping} ms to stop`);
    await until(
      () => moving.every((c) => c.disconnects.length > 0 && c.socket.connected),
      () =>
        `reconnections: ${moving.filter((c) => c.socket.connected && c.disconnects.length).length} of ${moving.length}`,
      15_000,
    );
    await Promise.all(moving.map(connected));
    for (const c of moving) assert.match(c.backend, /^s[12]$/, `${c.kind} client`);
    for (const c of staying)
      assert.deepEqual(c.disconnects, [], `${c.kind} client on ${c.backend}`);

    // The moved clients share rooms across the two remaining backends.
    for (const c of moving) await ask(c.socket, "join", "room-b");
    const sender = staying.find((c) => c.backend === "s1");
    await ask(sender.socket, "join", "room-b");
    await ask(sender.socket, "broadcast", "room-b", "after-failover");
    const inRoom = [...moving, sender];
    await until(
      () => inRoom.every((c) => c.messages.includes("after-failover")),
      () => "the broadcast after the failover",
    );
    // A request of an s3 session that was under way when s3 went down is
    // sent to another backend, which does not know the session (400,
    // "Session ID unknown"); its client then opens a new session. No other
    // session may be refused.
    for (const s of await Promise.all(backends.filter((b) => b !== s3).map(stats)))
      for (const e of s.connectionErrors)
        assert.ok(e.code === 1 && oldSids.has(e.sid), `${s.name}: ${JSON.stringify(e)}`);
  });

  it("moves the clients of a backend killed outright (SIGKILL) too", async () => {
    const s2 = backends.find((b) => b.name === "s2");
    const moving = on("s2");
    const staying = on("s1");
    assert.ok(moving.length > 0 && staying.length > 0);
    const before = new Map(clients.map((c) => [c, c.disconnects.length]));
    process.kill(s2.child.pid, "SIGKILL");
    await until(
      () => moving.every((c) => c.disconnects.length > before.get(c) && c.socket.connected),
      () =>
        `reconnections: ${moving.filter((c) => c.socket.connected && c.disconnects.length > before.get(c)).length} of ${moving.length}`,
      15_000,
    );
    await Promise.all(moving.map(connected));
    for (const c of moving) assert.equal(c.backend, "s1", `${c.kind} client`);
    for (const c of staying) assert.equal(c.disconnects.length, before.get(c), `${c.kind} client`);
  });
});

describe("Socket.IO on eio-rs: node cluster, attach(), @socket.io/sticky, cluster adapter", () => {
  let primary;
  let url;
  const clients = [];

  before(async () => {
    primary = track(
      fork(path.join(root, "examples", "cluster", "node-cluster.js"), [], {
        stdio: ["ignore", "pipe", "pipe", "ipc"],
        env: { ...process.env, PORT: "0", HOST, WORKERS: "2", EIO_RS_PATH: root },
      }),
    );
    primary.output = "";
    for (const stream of [primary.stdout, primary.stderr])
      stream.on("data", (d) => (primary.output += d));
    const ready = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no primary\n${primary.output}`)), 15_000);
      primary.on("message", (m) => m && m.type === "ready" && (clearTimeout(timer), resolve(m)));
      primary.on("exit", (code) => reject(new Error(`primary exited ${code}\n${primary.output}`)));
    });
    // The workers are the primary's children: it ends them on SIGTERM, and
    // they end when it goes. Known here too, to end them by PID if need be.
    primary.workers = ready.workers;
    url = `http://${HOST}:${ready.port}`;
  });

  after(async () => {
    for (const c of clients) c.socket.disconnect();
    await stopProcess(primary);
    for (const pid of (primary && primary.workers) || []) {
      for (let i = 0; i < 100; i++) {
        try {
          process.kill(pid, 0);
        } catch {
          break;
        }
        if (i === 99) process.kill(pid, "SIGKILL");
        else await sleep(20);
      }
    }
  });

  it("spreads polling and WebSocket clients over 2 workers; round trips, broadcast, fetchSockets", async () => {
    // One at a time: least-connection counts a session once its worker has said so.
    for (let i = 0; i < 12; i++) {
      const kind = i < 10 ? "polling" : i === 10 ? "websocket" : "default";
      clients.push(await connected(sioClient(url, kind, { reconnection: false })));
    }
    const spread = countBy(clients, (c) => c.backend);
    assert.deepEqual(Object.keys(spread).sort(), ["w1", "w2"]);
    assert.ok(spread.w1 >= 4 && spread.w2 >= 4, JSON.stringify(spread));

    await Promise.all(
      clients.map(async (c) => {
        for (let i = 0; i < 100; i++) {
          const [value, worker] = await askAll(c.socket, "echo", i);
          assert.equal(value, i);
          assert.equal(worker, c.backend);
        }
      }),
    );

    for (const c of clients) await ask(c.socket, "join", "room-c");
    await ask(clients[0].socket, "broadcast", "room-c", "to-all");
    await until(
      () => clients.every((c) => c.messages.includes("to-all")),
      () => "the broadcast at every client",
    );
    const found = await ask(clients[1].socket, "fetch-room", "room-c");
    assert.deepEqual([...found].sort(), clients.map((c) => c.socket.id).sort());
    await sleep(300);
    for (const c of clients) {
      assert.equal(c.messages.filter((m) => m === "to-all").length, 1);
      assert.deepEqual(c.disconnects, []);
    }
    assert.equal(clients[11].socket.io.engine.transport.name, "websocket");
    assert.doesNotMatch(primary.output, /connection_error|Session ID unknown/);
  });
});
