// Type declarations for eio-rs: the engine.io v6 API.

import { EventEmitter } from "events";

export type TransportName = "polling" | "websocket" | "webtransport";

export interface ServerOptions {
  pingTimeout?: number;
  pingInterval?: number;
  upgradeTimeout?: number;
  maxHttpBufferSize?: number;
  transports?: TransportName[];
  allowUpgrades?: boolean;
  allowEIO3?: boolean;
  initialPacket?: string | Buffer;
  /** Accepted for compatibility; WebSockets are served natively. */
  wsEngine?: unknown;
  /** permessage-deflate, negotiated as `ws` does (off by default). */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
  httpCompression?: boolean | object;
  cookie?: boolean | object;
  cors?: unknown;
  /** eio-rs: close sessions holding more than this many bytes for a client that does not read. */
  maxBufferedBytes?: number;
  /**
   * eio-rs, `listen()` only: ms a request may take to arrive whole, body included
   * (Node's `server.requestTimeout`); then 408 and the connection is closed. Default
   * 300000; 0 disables it.
   */
  requestTimeout?: number;
  /**
   * eio-rs: the engine's own WebTransport endpoint (HTTP/3 on UDP), served
   * when `transports` includes `"webtransport"`. With `listen()` the UDP port
   * defaults to the listener's port number; with `attach()` or `new Server()`
   * give `port` (0: any free port; see `webTransportAddress()`).
   */
  webtransport?: WebTransportOptions;
  allowRequest?: (
    req: EngineRequest,
    fn: (err: string | null | undefined, ok: boolean) => void,
  ) => void;
}

/** The `webtransport` option: where the endpoint listens, and its certificate. */
export interface WebTransportOptions {
  /** The UDP port (0: any free one). */
  port?: number;
  /** The address to bind; all interfaces (IPv6 and IPv4) by default. */
  host?: string;
  /** The private key, PEM (PKCS#8, PKCS#1 RSA or SEC1 EC), unencrypted. */
  key: string | Buffer | Array<string | Buffer>;
  /**
   * The certificate chain, PEM. Browsers accept a self-signed one through
   * `serverCertificateHashes` when it is ECDSA P-256 and valid for at most 14 days.
   */
  cert: string | Buffer | Array<string | Buffer>;
}

/**
 * A WebTransport session as `@fails-components/webtransport`'s `Http3Server`
 * hands it over (WHATWG streams), for `onWebTransportSession()`.
 */
export interface WebTransportSession {
  readonly incomingBidirectionalStreams: ReadableStream<{
    readable: ReadableStream<Uint8Array>;
    writable: WritableStream<Uint8Array>;
  }>;
  readonly closed: Promise<unknown>;
  close(info?: { closeCode?: number; reason?: string }): void;
}

/** The `ws` permessage-deflate options eio-rs honours. */
export interface PerMessageDeflateOptions {
  /** Smallest message compressed when the context is reset per message (1024). */
  threshold?: number;
  serverNoContextTakeover?: boolean;
  clientNoContextTakeover?: boolean;
  serverMaxWindowBits?: number | false;
  clientMaxWindowBits?: number | false;
  /** Only `level` is used. */
  zlibDeflateOptions?: { level?: number };
}

export interface AttachOptions {
  path?: string;
  destroyUpgrade?: boolean;
  destroyUpgradeTimeout?: number;
  addTrailingSlash?: boolean;
}

/** The request as the native listener saw it (the parts of IncomingMessage apps read). */
export interface EngineRequest {
  method: string;
  url: string;
  httpVersion: string;
  headers: Record<string, string | string[]>;
  rawHeaders: string[];
  socket: { remoteAddress: string; remotePort: number; remoteFamily: string; encrypted: boolean };
  connection: EngineRequest["socket"];
  _query: Record<string, string>;
}

export interface SendOptions {
  compress?: boolean;
}

export declare class Transport extends EventEmitter {
  readonly name: TransportName;
  readonly sid: string;
  readonly protocol: number;
  writable: boolean;
  readonly readyState: "open" | "closing" | "closed";
}

/** An Engine.IO packet, as the `packet`, `packetCreate` and `flush` events carry it. */
export interface Packet {
  type: "open" | "close" | "ping" | "pong" | "message" | "upgrade" | "noop";
  data?: string | Buffer;
  options?: SendOptions;
}

/** engine.io's close reasons, and any other string a transport reports. */
export type CloseReason =
  | "transport close"
  | "transport error"
  | "ping timeout"
  | "forced close"
  | "server shutting down"
  | "parse error"
  | (string & {});

/** The events of a Socket and their listeners. */
export interface SocketEvents {
  message: (data: string | Buffer) => void;
  data: (data: string | Buffer) => void;
  close: (reason: CloseReason, description?: unknown) => void;
  error: (err: Error) => void;
  packet: (packet: Packet) => void;
  packetCreate: (packet: Packet) => void;
  heartbeat: () => void;
  flush: (writeBuffer: Packet[]) => void;
  drain: () => void;
  upgrading: (transport: Transport) => void;
  upgrade: (transport: Transport) => void;
}

export declare class Socket extends EventEmitter {
  readonly id: string;
  readonly server: Server;
  readonly protocol: number;
  /** The handshake request (null, as in engine.io, for a session handed to `onWebTransportSession()`). */
  readonly request: EngineRequest;
  readonly remoteAddress: string;
  readonly readyState: "opening" | "open" | "closing" | "closed";
  transport: Transport;
  upgrading: boolean;
  upgraded: boolean;
  send(
    data: string | Buffer | ArrayBuffer | ArrayBufferView,
    options?: SendOptions,
    callback?: (t: Transport) => void,
  ): this;
  send(
    data: string | Buffer | ArrayBuffer | ArrayBufferView,
    callback?: (t: Transport) => void,
  ): this;
  write: Socket["send"];
  close(discard?: boolean): this;
  on<E extends keyof SocketEvents>(event: E, listener: SocketEvents[E]): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once<E extends keyof SocketEvents>(event: E, listener: SocketEvents[E]): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
}

export interface ConnectionError {
  req: EngineRequest;
  code: 0 | 1 | 2 | 3 | 4 | 5;
  message: string;
  context: Record<string, unknown>;
}

/**
 * Node's `tls` options that `listen()` serves HTTPS and WSS with (rustls,
 * TLS 1.2 and 1.3). Others (`pfx`, `passphrase`, `ciphers`, ...) throw an
 * error with `code: "ERR_EIO_TLS_OPTION"` and `option` naming them.
 */
export interface TlsOptions {
  /** The private key, PEM (PKCS#8, PKCS#1 RSA or SEC1 EC), unencrypted. */
  key?: string | Buffer | Array<string | Buffer>;
  /** The certificate chain, PEM, the server's own first. */
  cert?: string | Buffer | Array<string | Buffer>;
  /** Authorities for client certificates (with `requestCert`). */
  ca?: string | Buffer | Array<string | Buffer>;
  requestCert?: boolean;
  rejectUnauthorized?: boolean;
  minVersion?: "TLSv1.2" | "TLSv1.3";
  maxVersion?: "TLSv1.2" | "TLSv1.3";
  /** ms a client may take to finish the TLS handshake (120000). */
  handshakeTimeout?: number;
}

/** engine.httpServer for listen(): the native listener, with the Node server API callers use. */
export interface NativeHttpServer extends EventEmitter {
  readonly listening: boolean;
  address(): { address: string; family: string; port: number } | null;
  close(callback?: (err?: Error) => void): this;
  /** Node's `setSecureContext()`: new connections use this key and certificate. */
  setSecureContext(options: TlsOptions): void;
}

type ByTransport = Record<TransportName, number>;

/** What `engine.stats()` returns. */
export interface EngineStats {
  /** Open sessions by transport and protocol revision, and their total. */
  sessions: { total: number } & Record<TransportName, { "3": number; "4": number }>;
  /** Sessions opened. */
  handshakes: number;
  upgrades: { started: number; completed: number; failed: number };
  /** Sessions closed, by engine.io's close reason. */
  closes: Record<
    "transport close" | "transport error" | "ping timeout" | "forced close" | "parse error",
    number
  >;
  /** Requests refused, by the names of `Server.errors`. */
  refused: Record<keyof typeof Server.errors, number>;
  messages: { received: ByTransport; sent: ByTransport };
  bytes: { received: ByTransport; sent: ByTransport };
  /** Bytes held for clients that have not taken them yet. */
  bufferedBytes: number;
  /** Worker threads of the native runtime. */
  runtimeThreads: number;
  /** Whether drain() was called. */
  draining: boolean;
}

export declare class Server extends EventEmitter {
  constructor(opts?: ServerOptions & AttachOptions);
  static errors: {
    UNKNOWN_TRANSPORT: 0;
    UNKNOWN_SID: 1;
    BAD_HANDSHAKE_METHOD: 2;
    BAD_REQUEST: 3;
    FORBIDDEN: 4;
    UNSUPPORTED_PROTOCOL_VERSION: 5;
    /** eio-rs: a handshake refused with 503 by a draining engine. */
    SERVER_DRAINING: 6;
  };
  static errorMessages: Record<0 | 1 | 2 | 3 | 4 | 5 | 6, string>;
  readonly opts: ServerOptions;
  clients: Record<string, Socket>;
  clientsCount: number;
  httpServer?: NativeHttpServer;
  close(): this;
  /**
   * Refuses new sessions (503, SERVER_DRAINING) while open ones finish;
   * resolves when the last has closed, or closes those left after `timeout` ms.
   */
  drain(options?: { timeout?: number }): Promise<{ closed: number; forced: number }>;
  /** The engine's figures now. */
  stats(): EngineStats;
  /** `stats()` in Prometheus' text exposition format (`eio_` names). */
  metrics(): string;
  use(fn: (req: unknown, res: unknown, next: (err?: unknown) => void) => void): void;
  upgrades(transport: TransportName): string[];
  /**
   * Serves a WebTransport session the application's own HTTP/3 server
   * accepted on the engine path (engine.io's method). As in engine.io, the
   * session is closed when a middleware is registered, and `socket.request`
   * is null.
   */
  onWebTransportSession(session: WebTransportSession): Promise<void>;
  /** eio-rs: where the `webtransport` option's endpoint listens (UDP), or null. */
  webTransportAddress(): { address: string; family: string; port: number } | null;
  on(event: "connection", listener: (socket: Socket) => void): this;
  on(event: "connection_error", listener: (err: ConnectionError) => void): this;
  on(event: string, listener: (...args: any[]) => void): this;
}

/** engine.io's name for the server class that `attach()` and `listen()` return. */
export type BaseServer = Server;
export type ErrorCallback = (
  errorCode?: (typeof Server.errors)[keyof typeof Server.errors],
  errorContext?: Record<string, unknown>,
) => void;

export declare const protocol: 4;
export declare const transports: Record<
  TransportName,
  { upgradesTo: string[]; handlesUpgrades: boolean }
>;
/** A port, or where to listen: `{ port, host }` (host `::` by default, as Node's). */
export type ListenTarget = number | { port?: number; host?: string };
export declare function listen(
  port: ListenTarget,
  options?: ServerOptions & AttachOptions & TlsOptions,
  callback?: () => void,
): Server;
export declare function listen(port: ListenTarget, callback?: () => void): Server;
/**
 * The Node servers `attach()` takes: http, https, and http2 (secure or not;
 * there `attach()` turns on `enableConnectProtocol` so that clients may open
 * WebSockets over HTTP/2).
 */
export type AttachableServer =
  | import("http").Server
  | import("https").Server
  | import("http2").Http2Server
  | import("http2").Http2SecureServer;
export declare function attach(
  server: AttachableServer,
  options?: ServerOptions & AttachOptions,
): Server;
export declare const parser: typeof import("engine.io-parser");
