/** Server sessions against the memory backend, through the shared contract. */
import { createMemoryBackend } from '../../src/store/memory-backend.ts';
import { runServerSessionContract } from './server-session-contract.ts';

runServerSessionContract('memory', () => {
  const backend = createMemoryBackend();
  return Promise.resolve({ backend, close: () => backend.close() });
});
