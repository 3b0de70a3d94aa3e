"use strict";

// A self-signed certificate that WebTransport clients accept through
// `serverCertificateHashes`: ECDSA P-256, valid for at most 14 days in all.
// Built by hand in DER so that the tests need neither openssl nor an npm
// module; Node signs it and parses it back.

const crypto = require("node:crypto");
const net = require("node:net");

const HOUR = 3600 * 1000;
const DAY = 24 * HOUR;
/** The longest validity that serverCertificateHashes allows (WebTransport §4.3). */
const MAX_VALIDITY = 14 * DAY;

const OID = {
  ecdsaWithSHA256: "1.2.840.10045.4.3.2",
  commonName: "2.5.4.3",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectAltName: "2.5.29.17",
  serverAuth: "1.3.6.1.5.5.7.3.1",
};

/** One DER element: tag, definite length, content. */
function tlv(tag, content) {
  const n = content.length;
  let len;
  if (n < 0x80) len = Buffer.from([n]);
  else {
    const bytes = [];
    for (let rest = n; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest & 0xff);
    len = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), len, content]);
}

const seq = (...items) => tlv(0x30, Buffer.concat(items));
const set = (...items) => tlv(0x31, Buffer.concat(items));
const octets = (bytes) => tlv(0x04, bytes);
const bits = (bytes) => tlv(0x03, Buffer.concat([Buffer.from([0]), bytes]));
const bool = (value) => tlv(0x01, Buffer.from([value ? 0xff : 0]));
const utf8 = (text) => tlv(0x0c, Buffer.from(text, "utf8"));
const explicit = (n, item) => tlv(0xa0 | n, item);

/** A non-negative INTEGER from big-endian bytes (minimal, sign bit clear). */
function uint(bytes) {
  let b = Buffer.from(bytes);
  while (b.length > 1 && b[0] === 0 && b[1] < 0x80) b = b.subarray(1);
  if (b[0] & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(0x02, b);
}

function oid(dotted) {
  const [a, b, ...rest] = dotted.split(".").map(Number);
  const out = [40 * a + b];
  for (const arc of rest) {
    const groups = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) {
      groups.unshift(0x80 | (v & 0x7f));
    }
    out.push(...groups);
  }
  return tlv(0x06, Buffer.from(out));
}

/** UTCTime up to 2049, GeneralizedTime after, as RFC 5280 §4.1.2.5 says. */
function time(date) {
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-:T]/g, "") + "Z";
  const year = date.getUTCFullYear();
  if (year >= 1950 && year < 2050) return tlv(0x17, Buffer.from(digits.slice(2), "ascii"));
  return tlv(0x18, Buffer.from(digits, "ascii"));
}

/** The 4 or 16 bytes of an IP address, for a SAN iPAddress entry. */
function ipBytes(text) {
  if (net.isIPv4(text)) return Buffer.from(text.split(".").map(Number));
  let head = text;
  let v4 = [];
  const dotted = text.match(/^(.*:)(\d+\.\d+\.\d+\.\d+)$/);
  if (dotted) {
    head = dotted[1].endsWith("::") ? dotted[1] : dotted[1].slice(0, -1);
    v4 = dotted[2].split(".").map(Number);
  }
  const [left, right] = head.includes("::") ? head.split("::") : [head, undefined];
  const words = (s) => (s ? s.split(":").map((w) => parseInt(w, 16)) : []);
  const l = words(left);
  const r = words(right);
  const fill = 8 - v4.length / 2 - l.length - r.length;
  const all = [...l, ...(right === undefined ? [] : new Array(fill).fill(0)), ...r];
  const out = Buffer.alloc(16);
  all.forEach((w, i) => out.writeUInt16BE(w, 2 * i));
  Buffer.from(v4).copy(out, 12);
  return out;
}

function extension(id, critical, value) {
  return seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));
}

/**
 * A fresh key and self-signed certificate for `names` (DNS names and IP
 * addresses), valid from an hour ago for `days` days.
 *
 * Returns `{ key, cert, hash, hashHex, der, notBefore, notAfter }`: `key`
 * is PKCS#8 PEM, `cert` PEM, `hash` the SHA-256 of the certificate's DER as
 * a Uint8Array (what `serverCertificateHashes` takes), `hashHex` the same in
 * hex (what `eio-wt-client` takes).
 */
function makeCertificate({
  days = 13,
  names = ["localhost", "127.0.0.1", "::1"],
  notBefore = new Date(Date.now() - HOUR),
} = {}) {
  const notAfter = new Date(notBefore.getTime() + days * DAY);
  if (!(days > 0) || notAfter - notBefore > MAX_VALIDITY) {
    throw new RangeError(`a WebTransport certificate lasts at most 14 days; got ${days} days`);
  }
  if (names.length === 0) throw new RangeError("the certificate needs at least one name");
  const { privateKey, publicKey } = crypto.generateKeyPairSync("ec", {
    namedCurve: "prime256v1",
  });

  const serial = crypto.randomBytes(16);
  serial[0] = (serial[0] & 0x7f) | 0x01; // positive and 16 bytes long
  const signature = seq(oid(OID.ecdsaWithSHA256));
  const name = seq(set(seq(oid(OID.commonName), utf8("localhost"))));
  const sans = names.map((n) =>
    net.isIP(n) ? tlv(0x87, ipBytes(n)) : tlv(0x82, Buffer.from(n, "ascii")),
  );
  const extensions = seq(
    extension(OID.basicConstraints, true, seq()), // cA defaults to FALSE
    extension(OID.keyUsage, true, bits(Buffer.from([0x80]))), // digitalSignature
    extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth))),
    extension(OID.subjectAltName, false, seq(...sans)),
  );
  const tbs = seq(
    explicit(0, uint([2])), // v3
    uint(serial),
    signature,
    name,
    seq(time(notBefore), time(notAfter)),
    name,
    publicKey.export({ type: "spki", format: "der" }),
    explicit(3, extensions),
  );
  const der = seq(tbs, signature, bits(crypto.sign("sha256", tbs, privateKey)));

  const base64 = der.toString("base64").replace(/.{1,64}/g, "$&\n");
  const digest = crypto.createHash("sha256").update(der).digest();
  return {
    key: privateKey.export({ type: "pkcs8", format: "pem" }),
    cert: `-----BEGIN CERTIFICATE-----\n${base64}-----END CERTIFICATE-----\n`,
    hash: new Uint8Array(digest),
    hashHex: digest.toString("hex"),
    der,
    notBefore,
    notAfter,
  };
}

module.exports = { makeCertificate };
