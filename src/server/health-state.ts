/** Serving state shared by gRPC health, `/readyz` and shutdown: NOT_SERVING until ready and while draining. */
import { authorizationServiceName, ServingStatus } from './protos.ts';

/** What the health state can be: the gRPC health protocol's values, used by `/readyz` too. */
export type HealthStatus = typeof ServingStatus.SERVING | typeof ServingStatus.NOT_SERVING;

/**
 * The health service name for liveness probes: SERVING while the process runs, even before
 * discovery answers or while draining, so an unreachable provider never gets pods restarted.
 */
export const livenessService = 'liveness';

/** Services the gRPC health service answers for; anything else is NOT_FOUND. */
export const healthServices: ReadonlySet<string> = new Set([
  '',
  authorizationServiceName,
  livenessService,
]);

/** A component that must be ready before we serve (an app's discovery, the store). */
export interface ReadinessProbe {
  readonly name: string;
  /** `undefined` when ready, else a short, secret-free reason. */
  readonly waitingFor: () => string | undefined;
}

export class HealthState {
  #draining = false;
  #probes: readonly ReadinessProbe[] = [];
  readonly #watchers = new Set<(status: HealthStatus) => void>();
  #last: HealthStatus = ServingStatus.NOT_SERVING;

  /** Replaces the probes (on start and on config reload) and re-evaluates. */
  setProbes(probes: readonly ReadinessProbe[]): void {
    this.#probes = probes;
    this.refresh();
  }

  /** The components still waiting, by name; empty when ready. */
  waiting(): { readonly name: string; readonly reason: string }[] {
    const waiting: { name: string; reason: string }[] = [];
    for (const probe of this.#probes) {
      const reason = probe.waitingFor();
      if (reason !== undefined) waiting.push({ name: probe.name, reason });
    }
    return waiting;
  }

  status(): HealthStatus {
    if (this.#draining) return ServingStatus.NOT_SERVING;
    for (const probe of this.#probes) {
      if (probe.waitingFor() !== undefined) return ServingStatus.NOT_SERVING;
    }
    return ServingStatus.SERVING;
  }

  isDraining(): boolean {
    return this.#draining;
  }

  startDraining(): void {
    this.#draining = true;
    this.refresh();
  }

  /** Tells watchers when the status changed; called by probes' owners when they become ready. */
  refresh(): void {
    const status = this.status();
    if (status === this.#last) return;
    this.#last = status;
    for (const watcher of this.#watchers) watcher(status);
  }

  watch(watcher: (status: HealthStatus) => void): () => void {
    this.#watchers.add(watcher);
    return () => this.#watchers.delete(watcher);
  }
}
