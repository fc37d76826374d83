/** A session binding for tests that are not about the binding itself. */
import type { SessionBinding } from '../../src/session/session-keys.ts';

export const testBinding: SessionBinding = Object.freeze({
  deployment: 'default',
  keyPrefix: 'eoa:',
  app: 'app',
  issuer: 'https://idp.example.com',
  clientId: 'app',
});
