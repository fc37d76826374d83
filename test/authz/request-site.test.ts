import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { requestSite, type RequestSite } from '../../src/authz/request-site.ts';
import type { RequestModel } from '../../src/authz/request.ts';

function request(
  headers: Record<string, string>,
  at: { scheme?: 'http' | 'https'; host?: string; port?: number } = {},
): RequestModel {
  return {
    id: '1',
    method: 'GET',
    scheme: at.scheme ?? 'https',
    host: at.host ?? 'grafana.example.com',
    port: at.port,
    path: '/oauth2/logout',
    query: '',
    headers: new Map(Object.entries(headers)),
    underscoredHeaders: [],
    cookies: new Map(),
    clientAddress: '10.0.0.1',
    contextExtensions: new Map(),
    body: '',
  };
}

describe('requestSite', () => {
  const rows: [string, Record<string, string>, RequestSite, Parameters<typeof request>[1]?][] = [
    ['Sec-Fetch-Site same-origin', { 'sec-fetch-site': 'same-origin' }, 'same-origin'],
    ['Sec-Fetch-Site none (typed, bookmark)', { 'sec-fetch-site': 'none' }, 'same-origin'],
    ['Sec-Fetch-Site in capitals', { 'sec-fetch-site': 'Same-Origin' }, 'same-origin'],
    ['Sec-Fetch-Site cross-site', { 'sec-fetch-site': 'cross-site' }, 'cross-origin'],
    [
      'Sec-Fetch-Site same-site (a sibling subdomain)',
      { 'sec-fetch-site': 'same-site' },
      'cross-origin',
    ],
    [
      'Sec-Fetch-Site doubled by a proxy',
      { 'sec-fetch-site': 'same-origin,cross-site' },
      'cross-origin',
    ],
    ['Sec-Fetch-Site of an unknown value', { 'sec-fetch-site': 'whatever' }, 'cross-origin'],
    [
      'Sec-Fetch-Site wins over an Origin behind a TLS-terminating proxy',
      { 'sec-fetch-site': 'same-origin', origin: 'https://grafana.example.com' },
      'same-origin',
      { scheme: 'http' },
    ],
    ['no metadata, same Origin', { origin: 'https://grafana.example.com' }, 'same-origin'],
    [
      'no metadata, same Origin with the default port spelt out',
      { origin: 'https://grafana.example.com:443' },
      'same-origin',
    ],
    [
      'no metadata, same Origin and port',
      { origin: 'http://127.0.0.1:8080' },
      'same-origin',
      { scheme: 'http', host: '127.0.0.1', port: 8080 },
    ],
    ['no metadata, another Origin', { origin: 'https://evil.example' }, 'cross-origin'],
    ['no metadata, a sibling Origin', { origin: 'https://evil.example.com' }, 'cross-origin'],
    ['no metadata, Origin over http', { origin: 'http://grafana.example.com' }, 'cross-origin'],
    ['no metadata, Origin null (sandboxed, redirected)', { origin: 'null' }, 'cross-origin'],
    ['no metadata, Origin garbage', { origin: '<script>' }, 'cross-origin'],
    ['neither header (curl, old browsers)', {}, 'unknown'],
  ];
  for (const [name, headers, expected, at] of rows) {
    it(`${name}: ${expected}`, () => {
      assert.equal(requestSite(request(headers, at)), expected);
    });
  }
});
