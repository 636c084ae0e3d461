import { createServer, type IncomingMessage, type Server } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';

/**
 * The twin's HTTP front door: one server on 127.0.0.1 for every service. AWS routes by host name; the twin
 * routes by what the SDK signs: the SigV4 credential scope names the region and the service, as AWS would
 * check them. Query-protocol bodies (EC2, STS, SNS, Auto Scaling) arrive as form fields, JSON-protocol ones
 * (KMS, Step Functions) as a document with the action in X-Amz-Target, REST-JSON ones (Recycle Bin) as a
 * document with the operation in the method and path (`POST /list-rules`).
 */
export interface TwinRequest {
  service: string;
  region: string;
  action: string;
  protocol: 'query' | 'json' | 'rest-json';
  /** Query protocol: the form fields, flattened as sent (`ImageId.1`, `Filter.1.Name`, ...). */
  params: Record<string, string>;
  /** JSON and REST-JSON protocols: the parsed body. */
  json: Record<string, unknown>;
  /** The HTTP method and the path without its query (REST-JSON routes on them; `action` is `METHOD /path`). */
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  requestId: string;
}

export interface TwinResponse {
  status: number;
  body: string;
  contentType: string;
  headers?: Record<string, string>;
}

export type ServiceHandler = (request: TwinRequest) => Promise<TwinResponse> | TwinResponse;

export interface HttpServer {
  endpoint: string;
  port: number;
  stop(): Promise<void>;
}

const SCOPE = /Credential=[^/]+\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/;

export async function startHttpServer(
  route: (request: TwinRequest) => Promise<TwinResponse>,
  port = 0,
): Promise<HttpServer> {
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      parseRequest(req, body)
        .then(route)
        .catch((error: unknown) => jsonError(500, 'InternalFailure', (error as Error).message))
        .then((response) => {
          res.writeHead(response.status, { 'content-type': response.contentType, ...response.headers });
          res.end(response.body);
        })
        .catch(() => res.destroy());
    });
  });
  // Keep-alive sockets would hold the process open after stop(); the twin is for one machine, so close them.
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const actual = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${actual}`,
    port: actual,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function parseRequest(req: IncomingMessage, body: string): Promise<TwinRequest> {
  const scope = SCOPE.exec(String(req.headers.authorization ?? ''));
  const requestId = randomUUID();
  const method = req.method ?? 'GET';
  const path = decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/');
  const base = { region: scope?.[1] ?? '', service: scope?.[2] ?? '', headers: req.headers, requestId, method, path };
  const target = req.headers['x-amz-target'];
  const parseJson = (): Record<string, unknown> => {
    try {
      return body ? (JSON.parse(body) as Record<string, unknown>) : {};
    } catch {
      return {};
    }
  };
  if (typeof target === 'string')
    return { ...base, protocol: 'json', action: target.slice(target.indexOf('.') + 1), params: {}, json: parseJson() };
  // Query-protocol calls are form posts to `/`; anything else is REST.
  if (method !== 'POST' || path !== '/' || String(req.headers['content-type'] ?? '').startsWith('application/json'))
    return { ...base, protocol: 'rest-json', action: `${method} ${path}`, params: {}, json: parseJson() };
  const params = Object.fromEntries(new URLSearchParams(body));
  return { ...base, protocol: 'query', action: params.Action ?? '', params, json: {} };
}

/**
 * A service error raised inside a handler and turned into the protocol's error response at its boundary. `code` is
 * what the SDK turns into the error's `name` (`InvalidAMIID.NotFound`, `NotFoundException`), so it must be the
 * service's own code.
 */
export class TwinServiceError extends Error {
  override name = 'TwinServiceError';
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

/** A JSON-protocol error as the SDK parses it (`__type` names the error). */
export function jsonError(status: number, code: string, message: string): TwinResponse {
  return {
    status,
    contentType: 'application/x-amz-json-1.1',
    headers: { 'x-amzn-errortype': code },
    body: JSON.stringify({ __type: code, message }),
  };
}

export function jsonResponse(document: unknown, contentType = 'application/x-amz-json-1.1'): TwinResponse {
  return { status: 200, contentType, body: JSON.stringify(document) };
}

export function escapeXml(value: string): string {
  return value.replace(
    /[<>&'"]/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] ?? c,
  );
}
