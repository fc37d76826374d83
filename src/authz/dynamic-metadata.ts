/** `dynamicMetadata`: identity for Envoy's own filters (RBAC, rate limit, access log), compiled once per app. */
import type { AppConfig } from '../config/schema.ts';
import { compileTemplate, type TemplateContext } from '../config/template.ts';
import { fits } from './identity-headers.ts';
import type { MetadataEntry } from './verdict.ts';

export interface DynamicMetadata {
  /**
   * The entries of one identity, in the configured order. An entry that renders empty, unsafe
   * (see `compileTemplate`) or over 8 KiB is left out. `context` carries no tokens: the config
   * refuses `tokens.*` here, metadata reaches Envoy's access logs.
   */
  render(context: Omit<TemplateContext, 'tokens'>): readonly MetadataEntry[];
}

const none: readonly MetadataEntry[] = Object.freeze([]);
const noTokens = Object.freeze({});

/** `dynamicMetadata` maps metadata key → template (checked by the config loader). */
export function compileDynamicMetadata(
  options: Pick<AppConfig, 'dynamicMetadata'>,
): DynamicMetadata {
  const compiled = Object.entries(options.dynamicMetadata).map(([key, source]) => {
    const template = compileTemplate(source);
    if (!template.ok) throw new Error(`template of metadata ${key}: ${template.message}`);
    return { key, template };
  });
  if (compiled.length === 0) return { render: () => none };
  return {
    render(context) {
      // Fields by name: a spread followed by more properties takes a slow path in Node 20.
      const full: TemplateContext =
        context.auth === undefined
          ? { claims: context.claims, tokens: noTokens, app: context.app }
          : { claims: context.claims, tokens: noTokens, app: context.app, auth: context.auth };
      const out: MetadataEntry[] = [];
      for (const { key, template } of compiled) {
        const value = template.render(full);
        // Left out rather than cut mid-value, as an identity header is.
        if (value !== undefined && fits(value)) out.push([key, value]);
      }
      return out;
    },
  };
}
