/**
 * Start-up: the service listens at once (so probes get answers) but serves the
 * task routes only once the sidecar answers, has loaded every component the
 * service uses, and the API token (when configured) has been read through it.
 */
import type { FastifyBaseLogger } from 'fastify';
import { isServiceError, ServiceError } from './errors.ts';
import { LOG } from './logging.ts';
import type { Secrets, Sidecar } from './ports.ts';

export class StartupGate {
  private opened = false;
  private token: string | undefined;

  get isOpen(): boolean {
    return this.opened;
  }

  /** The bearer token the write routes require, when the API has one. */
  get apiToken(): string | undefined {
    return this.token;
  }

  open(apiToken: string | undefined): void {
    this.token = apiToken;
    this.opened = true;
  }

  /** Throws not_ready (503) while start-up has not finished: what every route but the probes does first. */
  check(): void {
    if (!this.opened) throw new ServiceError('not_ready', 'the service is starting: its Dapr sidecar is not ready yet');
  }
}

export interface StartupPlan {
  sidecar: Sidecar;
  secrets: Secrets | undefined;
  /** Components the service uses; it is not ready before the sidecar has loaded each. */
  components: string[];
  apiToken: { secretName: string; key: string } | undefined;
  /** Last before opening, once the components are loaded (the live settings' first read); tried again on failure. */
  prepare?: () => Promise<void>;
}

/** Components in `wanted` the sidecar has not loaded; throws sidecar_unavailable when it does not answer. */
export async function missingComponents(sidecar: Sidecar, wanted: string[]): Promise<string[]> {
  const loaded = new Set(await sidecar.loadedComponents());
  return wanted.filter((name) => !loaded.has(name));
}

const RETRY_MS = 500;

/** Retries until everything is there; a sidecar that comes late or restarts is waited for, never fatal. */
export async function openWhenReady(gate: StartupGate, plan: StartupPlan, logger: FastifyBaseLogger): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      const missing = await missingComponents(plan.sidecar, plan.components);
      if (missing.length > 0) throw new ServiceError('not_ready', `components not loaded: ${missing.join(', ')}`);
      const token =
        plan.apiToken && plan.secrets
          ? await plan.secrets.read(plan.apiToken.secretName, plan.apiToken.key)
          : undefined;
      await plan.prepare?.().catch((error: unknown) => {
        throw new ServiceError('not_ready', `not prepared: ${error instanceof Error ? error.message : String(error)}`, {
          cause: error,
        });
      });
      gate.open(token);
      logger.info({ components: plan.components, auth: token !== undefined }, LOG.ready);
      return;
    } catch (error) {
      if (!isServiceError(error)) throw error;
      // One line when waiting starts, then quiet: a slow sidecar is normal at pod start.
      if (attempt === 0) logger.info({ code: error.code, reason: error.message }, LOG.waitingForSidecar);
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }
}
