import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { certificateThumbprint, xfccCertificate } from '../../src/authz/client-certificate.ts';

describe('x-forwarded-client-cert parsing', () => {
  it('takes the Cert of the element hops places from the right', () => {
    const header = 'By=a;Cert="one";URI=x,By=b;Cert="two",Cert=three';
    assert.equal(xfccCertificate(header, 1), 'three');
    assert.equal(xfccCertificate(header, 2), 'two');
    assert.equal(xfccCertificate(header, 3), 'one');
    assert.equal(xfccCertificate(header, 4), undefined);
  });

  it('keeps quoted commas, semicolons and escaped quotes inside one value', () => {
    const header = 'Subject="CN=a\\,b;c,d=\\"e\\"";Cert="pem,with;separators";DNS=x';
    assert.equal(xfccCertificate(header, 1), 'pem,with;separators');
  });

  it('refuses unbalanced quotes, two Cert keys and too many elements', () => {
    assert.equal(xfccCertificate('Cert="open', 1), undefined);
    assert.equal(xfccCertificate('Cert=a;cert=b', 1), undefined);
    assert.equal(xfccCertificate(Array(33).fill('Cert=a').join(','), 1), undefined);
    assert.equal(xfccCertificate('By=a;URI=b', 1), undefined);
  });

  it('reads a thumbprint only from exactly one PEM certificate block', () => {
    const pem = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
    assert.match(certificateThumbprint(encodeURIComponent(pem)) ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.equal(certificateThumbprint(encodeURIComponent(pem + pem)), undefined);
    assert.equal(certificateThumbprint('%E0%A4%A'), undefined);
    assert.equal(
      certificateThumbprint(
        encodeURIComponent('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n'),
      ),
      undefined,
    );
  });
});
