/** Checks Kubernetes and Istio documents against the published models: field names, types and constraints. */
import { join } from 'node:path';

import * as k8sApps from 'kubernetes-models/apps/v1';
import * as k8sAutoscaling from 'kubernetes-models/autoscaling/v2';
import * as k8sCore from 'kubernetes-models/v1';
import * as k8sPolicy from 'kubernetes-models/policy/v1';
import * as istioInstall from '@kubernetes-models/istio/install.istio.io/v1alpha1';
import * as istioNetworking from '@kubernetes-models/istio/networking.istio.io/v1beta1';
import * as istioSecurity from '@kubernetes-models/istio/security.istio.io/v1';
import ts from 'typescript';

import { repoRoot } from './repo-path.ts';

interface ModelInstance {
  validate(): void;
}

type ModelClass = new (data: never) => ModelInstance;

interface KnownKind {
  /** The module whose TypeScript interface describes the document. */
  readonly module: string;
  readonly interfaceName: string;
  /** The model class: its `validate()` runs the published OpenAPI schema. */
  readonly model: ModelClass;
  /** Whose schema the model leaves open; the caller checks it another way. */
  readonly open?: string;
}

const kinds: Readonly<Record<string, KnownKind>> = {
  'apps/v1 Deployment': {
    module: 'kubernetes-models/apps/v1',
    interfaceName: 'IDeployment',
    model: k8sApps.Deployment,
  },
  'apps/v1 StatefulSet': {
    module: 'kubernetes-models/apps/v1',
    interfaceName: 'IStatefulSet',
    model: k8sApps.StatefulSet,
  },
  'v1 Service': {
    module: 'kubernetes-models/v1',
    interfaceName: 'IService',
    model: k8sCore.Service,
  },
  'v1 ConfigMap': {
    module: 'kubernetes-models/v1',
    interfaceName: 'IConfigMap',
    model: k8sCore.ConfigMap,
  },
  'v1 Secret': { module: 'kubernetes-models/v1', interfaceName: 'ISecret', model: k8sCore.Secret },
  'policy/v1 PodDisruptionBudget': {
    module: 'kubernetes-models/policy/v1',
    interfaceName: 'IPodDisruptionBudget',
    model: k8sPolicy.PodDisruptionBudget,
  },
  'autoscaling/v2 HorizontalPodAutoscaler': {
    module: 'kubernetes-models/autoscaling/v2',
    interfaceName: 'IHorizontalPodAutoscaler',
    model: k8sAutoscaling.HorizontalPodAutoscaler,
  },
  'security.istio.io/v1 AuthorizationPolicy': {
    module: '@kubernetes-models/istio/security.istio.io/v1',
    interfaceName: 'IAuthorizationPolicy',
    model: istioSecurity.AuthorizationPolicy,
  },
  'networking.istio.io/v1beta1 VirtualService': {
    module: '@kubernetes-models/istio/networking.istio.io/v1beta1',
    interfaceName: 'IVirtualService',
    model: istioNetworking.VirtualService,
  },
  'install.istio.io/v1alpha1 IstioOperator': {
    module: '@kubernetes-models/istio/install.istio.io/v1alpha1',
    interfaceName: 'IIstioOperator',
    model: istioInstall.IstioOperator,
    // The published model keeps `spec` as free-form; its meshConfig is checked against the
    // MeshConfig proto instead.
    open: 'spec',
  },
};

/** One document to check, named for messages (`istio/deployment.yaml#0`). */
export interface NamedDocument {
  readonly name: string;
  readonly document: Record<string, unknown>;
}

/** The kind key of a document: `apiVersion kind`. */
export function kindOf(document: Record<string, unknown>): string {
  return `${String(document['apiVersion'])} ${String(document['kind'])}`;
}

/** True when {@link checkManifests} knows the document's kind. */
export function isKnownKind(document: Record<string, unknown>): boolean {
  return Object.hasOwn(kinds, kindOf(document));
}

/**
 * Checks every document two ways and returns the problems by document name (empty: all pass).
 *
 * 1. The model's `validate()`: the OpenAPI schema Kubernetes publishes (required fields,
 *    formats, enums). It lets unknown fields through, as the schema does not close objects.
 * 2. The model's TypeScript interface, by type-checking the document as an object literal:
 *    excess-property checks reject any unknown (misspelt) field at any depth, and wrong value
 *    types, just as `kubectl apply --validate=strict` would.
 */
export function checkManifests(documents: readonly NamedDocument[]): Map<string, string[]> {
  const problems = new Map<string, string[]>();
  const add = (name: string, message: string): void => {
    problems.set(name, [...(problems.get(name) ?? []), message]);
  };
  const files = new Map<string, string>();
  documents.forEach(({ name, document }, index) => {
    const kind = kinds[kindOf(document)];
    if (kind === undefined) {
      add(name, `no published model for ${kindOf(document)}`);
      return;
    }
    try {
      new kind.model(document as never).validate();
    } catch (error) {
      add(name, error instanceof Error ? error.message : String(error));
    }
    const source =
      `import type { ${kind.interfaceName} as Model } from '${kind.module}';\n` +
      (kind.open === undefined
        ? `export const document: Model = `
        : `export const document: Model & { ${kind.open}?: unknown } = `) +
      `${JSON.stringify(document, null, 2)};\n`;
    files.set(join(repoRoot, `__manifest_${index}__.ts`), source);
  });
  const names = new Map(
    [...files.keys()].map((file, i) => [file, documents[i]?.name ?? file] as const),
  );
  for (const [file, message] of typeCheck(files)) add(names.get(file) ?? file, message);
  return problems;
}

function typeCheck(files: ReadonlyMap<string, string>): [string, string][] {
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    skipLibCheck: true,
    types: [],
    lib: ['lib.es2022.d.ts'],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const readFile = host.readFile.bind(host);
  host.fileExists = (file) => files.has(file) || fileExists(file);
  host.readFile = (file) => files.get(file) ?? readFile(file);
  host.getSourceFile = (file, language, onError, create) => {
    const text = files.get(file);
    return text === undefined
      ? getSourceFile(file, language, onError, create)
      : ts.createSourceFile(file, text, language, true);
  };
  const program = ts.createProgram([...files.keys()], options, host);
  const found: [string, string][] = [];
  for (const file of files.keys()) {
    const sourceFile = program.getSourceFile(file);
    for (const diagnostic of ts.getPreEmitDiagnostics(program, sourceFile)) {
      const where =
        diagnostic.file !== undefined && diagnostic.start !== undefined
          ? `line ${diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start).line + 1}: `
          : '';
      found.push([file, where + ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')]);
    }
  }
  return found;
}
