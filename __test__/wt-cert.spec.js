"use strict";

// __test__/wt/cert.js: the hand-built certificate that the WebTransport
// tests pin by hash must be one that X.509 parsers, TLS stacks and the
// serverCertificateHashes rules (P-256, at most 14 days) all accept.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const crypto = require("node:crypto");
const tls = require("node:tls");
const { makeCertificate } = require("./wt/cert");

const DAY = 24 * 3600 * 1000;

test("the certificate parses, matches its key and is self-signed", () => {
  const { key, cert, hash, hashHex, der } = makeCertificate();
  const x509 = new crypto.X509Certificate(cert);
  assert.equal(x509.checkPrivateKey(crypto.createPrivateKey(key)), true);
  assert.equal(x509.verify(x509.publicKey), true);
  assert.equal(x509.subject, "CN=localhost");
  assert.equal(x509.issuer, "CN=localhost");
  assert.equal(x509.ca, false);
  assert.deepEqual(x509.raw, der);
  assert.equal(x509.publicKey.asymmetricKeyType, "ec");
  assert.equal(x509.publicKey.asymmetricKeyDetails.namedCurve, "prime256v1");
  assert.match(key, /^-----BEGIN PRIVATE KEY-----\n/);

  assert.ok(hash instanceof Uint8Array);
  assert.equal(hash.length, 32);
  assert.equal(Buffer.from(hash).toString("hex"), hashHex);
  assert.equal(x509.fingerprint256.replace(/:/g, "").toLowerCase(), hashHex);
});

test("it names localhost, 127.0.0.1 and ::1 by default", () => {
  const x509 = new crypto.X509Certificate(makeCertificate().cert);
  assert.equal(x509.checkHost("localhost"), "localhost");
  assert.equal(x509.checkIP("127.0.0.1"), "127.0.0.1");
  assert.equal(x509.checkIP("::1"), "::1");
  assert.equal(x509.checkHost("example.com"), undefined);

  const other = makeCertificate({ names: ["a.test", "10.1.2.3", "fe80::1:2", "::ffff:1.2.3.4"] });
  const san = new crypto.X509Certificate(other.cert).subjectAltName;
  assert.equal(
    san,
    "DNS:a.test, IP Address:10.1.2.3, IP Address:FE80:0:0:0:0:0:1:2, IP Address:0:0:0:0:0:FFFF:102:304",
  );
});

test("it is valid from an hour ago for `days` days, 14 at most", () => {
  const before = Date.now();
  const { cert, notBefore, notAfter } = makeCertificate({ days: 2 });
  const x509 = new crypto.X509Certificate(cert);
  // X.509 times have whole seconds.
  const from = Date.parse(x509.validFrom);
  const to = Date.parse(x509.validTo);
  assert.ok(Math.abs(from - (before - 3600 * 1000)) < 5000, x509.validFrom);
  assert.equal(to - from, 2 * DAY);
  assert.equal(Math.floor(notBefore / 1000) * 1000, from);
  assert.equal(Math.floor(notAfter / 1000) * 1000, to);

  const longest = new crypto.X509Certificate(makeCertificate({ days: 14 }).cert);
  assert.equal(Date.parse(longest.validTo) - Date.parse(longest.validFrom), 14 * DAY);
  assert.throws(() => makeCertificate({ days: 14.5 }), RangeError);
  assert.throws(() => makeCertificate({ days: 0 }), RangeError);
});

test("every certificate is new", () => {
  const a = makeCertificate();
  const b = makeCertificate();
  assert.notEqual(a.hashHex, b.hashHex);
  assert.notEqual(
    new crypto.X509Certificate(a.cert).serialNumber,
    new crypto.X509Certificate(b.cert).serialNumber,
  );
});

test("a TLS client that trusts it completes a handshake with it", async () => {
  const { key, cert } = makeCertificate();
  const server = tls.createServer({ key, cert }, (socket) => socket.end("hi"));
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const { port } = server.address();
    const got = await new Promise((resolve, reject) => {
      const socket = tls.connect({ port, host: "127.0.0.1", servername: "localhost", ca: cert });
      let data = "";
      socket.on("data", (d) => (data += d));
      socket.on("end", () => resolve(data));
      socket.on("error", reject);
    });
    assert.equal(got, "hi");
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});
