/** A small HTTPS client for tests: loopback only, certificate checks on. */
import { request } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';

export interface TestResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: any;
}

export interface TestRequest {
  method?: string;
  headers?: Record<string, string | number>;
  body?: string | Buffer;
  ca?: string | Buffer;
}

/** Sends one request and collects the whole response. */
export function send(url: string, opts: TestRequest = {}): Promise<TestResponse> {
  const u = new URL(url);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) {
    throw new Error(`tests talk to loopback only, not ${u.hostname}`);
  }
  return new Promise((resolve, reject) => {
    const req = request(u, {
      method: opts.method ?? 'GET',
      headers: opts.headers ?? {},
      ...(opts.ca ? { ca: opts.ca } : {}),
      agent: false,
      servername: 'localhost',
    });
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.end(opts.body);
  });
}
