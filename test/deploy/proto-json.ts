/** A strict proto3-JSON checker: unknown fields, wrong JSON types and unresolvable `@type`s are problems. */
import protobuf from 'protobufjs';
export { loadProtoRoot } from '../../dev/upstream-protos.ts';

/** One mistake in a document, at a path such as `static_resources.clusters[0].conect_timeout`. */
export interface ProtoJsonProblem {
  readonly path: string;
  readonly message: string;
}

const typeUrlPrefix = 'type.googleapis.com/';

/** The proto3 JSON name of a field: `lower_snake` → `lowerCamel`. */
function jsonName(fieldName: string): string {
  return fieldName.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}

const wrapperScalars: Readonly<Record<string, string>> = {
  'google.protobuf.DoubleValue': 'double',
  'google.protobuf.FloatValue': 'float',
  'google.protobuf.Int64Value': 'int64',
  'google.protobuf.UInt64Value': 'uint64',
  'google.protobuf.Int32Value': 'int32',
  'google.protobuf.UInt32Value': 'uint32',
  'google.protobuf.BoolValue': 'bool',
  'google.protobuf.StringValue': 'string',
  'google.protobuf.BytesValue': 'bytes',
};

const int32Types = new Set(['int32', 'sint32', 'sfixed32']);
const uint32Types = new Set(['uint32', 'fixed32']);
const int64Types = new Set(['int64', 'sint64', 'sfixed64', 'uint64', 'fixed64']);

/**
 * Checks `value` (a document parsed from JSON or YAML) against message `typeName` of `root`,
 * the way Envoy's and Istio's proto-JSON parsers read it: field names in snake_case or
 * lowerCamelCase, at most one member of a oneof, enums by name or number, `google.protobuf.Any`
 * resolved by its `@type` in `root` and checked in turn, and the JSON forms of the well-known
 * types (`Duration` `"5s"`, `Struct`, wrappers as bare scalars). Returns every problem found;
 * an empty list means the document would parse.
 */
export function checkProtoJson(
  root: protobuf.Root,
  typeName: string,
  value: unknown,
): ProtoJsonProblem[] {
  const problems: ProtoJsonProblem[] = [];
  checkMessage(root, root.lookupType(typeName), value, '', problems);
  return problems;
}

function pathJoin(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function checkMessage(
  root: protobuf.Root,
  type: protobuf.Type,
  value: unknown,
  path: string,
  problems: ProtoJsonProblem[],
): void {
  const report = (message: string): void => {
    problems.push({ path: path === '' ? '(root)' : path, message });
  };
  const wellKnown = type.fullName.replace(/^\./, '');
  const wrapped = wrapperScalars[wellKnown];
  if (wrapped !== undefined) {
    checkScalar(wrapped, value, report);
    return;
  }
  switch (wellKnown) {
    case 'google.protobuf.Any':
      checkAny(root, value, path, problems);
      return;
    case 'google.protobuf.Duration':
      if (typeof value !== 'string' || !/^-?\d+(\.\d{1,9})?s$/.test(value)) {
        report(`expected a duration such as "5s" or "0.25s", got ${describeValue(value)}`);
      }
      return;
    case 'google.protobuf.Timestamp':
      if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) {
        report(`expected an RFC 3339 timestamp, got ${describeValue(value)}`);
      }
      return;
    case 'google.protobuf.FieldMask':
      if (typeof value !== 'string')
        report(`expected a field mask string, got ${describeValue(value)}`);
      return;
    case 'google.protobuf.Struct':
      if (!isPlainObject(value)) report(`expected an object, got ${describeValue(value)}`);
      return;
    case 'google.protobuf.ListValue':
      if (!Array.isArray(value)) report(`expected a list, got ${describeValue(value)}`);
      return;
    case 'google.protobuf.Value':
      return;
    default:
      break;
  }
  if (!isPlainObject(value)) {
    report(`expected an object (${wellKnown}), got ${describeValue(value)}`);
    return;
  }
  const byName = new Map<string, protobuf.Field>();
  for (const field of type.fieldsArray) {
    byName.set(field.name, field);
    byName.set(jsonName(field.name), field);
  }
  const oneofSeen = new Map<string, string>();
  for (const [key, child] of Object.entries(value)) {
    const childPath = pathJoin(path, key);
    const field = byName.get(key);
    if (field === undefined) {
      problems.push({ path: childPath, message: `unknown field in ${wellKnown}` });
      continue;
    }
    if (field.partOf !== null && child !== null) {
      const other = oneofSeen.get(field.partOf.name);
      if (other !== undefined) {
        problems.push({
          path: childPath,
          message: `oneof ${field.partOf.name} already set by ${other}`,
        });
      }
      oneofSeen.set(field.partOf.name, key);
    }
    checkField(root, field, child, childPath, problems);
  }
}

function checkField(
  root: protobuf.Root,
  field: protobuf.Field,
  value: unknown,
  path: string,
  problems: ProtoJsonProblem[],
): void {
  // proto3 JSON: null means "default" for every field except google.protobuf.Value.
  if (value === null) return;
  if (field instanceof protobuf.MapField) {
    if (!isPlainObject(value)) {
      problems.push({ path, message: `expected a map (object), got ${describeValue(value)}` });
      return;
    }
    for (const [key, entry] of Object.entries(value)) {
      checkSingle(root, field, entry, `${path}[${JSON.stringify(key)}]`, problems);
    }
    return;
  }
  if (field.repeated) {
    if (!Array.isArray(value)) {
      problems.push({ path, message: `expected a list, got ${describeValue(value)}` });
      return;
    }
    value.forEach((item, index) => checkSingle(root, field, item, `${path}[${index}]`, problems));
    return;
  }
  checkSingle(root, field, value, path, problems);
}

function checkSingle(
  root: protobuf.Root,
  field: protobuf.Field,
  value: unknown,
  path: string,
  problems: ProtoJsonProblem[],
): void {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) {
    checkMessage(root, resolved, value, path, problems);
  } else if (resolved instanceof protobuf.Enum) {
    const known =
      (typeof value === 'string' && Object.hasOwn(resolved.values, value)) ||
      (typeof value === 'number' && Number.isInteger(value));
    if (!known) {
      problems.push({
        path,
        message: `expected one of ${Object.keys(resolved.values).join(', ')}, got ${describeValue(value)}`,
      });
    }
  } else {
    checkScalar(field.type, value, (message) => problems.push({ path, message }));
  }
}

function checkScalar(type: string, value: unknown, report: (message: string) => void): void {
  const isIntegerText = (text: unknown): boolean =>
    typeof text === 'string' && /^-?\d+$/.test(text);
  let ok: boolean;
  if (type === 'string') ok = typeof value === 'string';
  else if (type === 'bool') ok = typeof value === 'boolean';
  else if (type === 'bytes') ok = typeof value === 'string' && /^[A-Za-z0-9+/_-]*=*$/.test(value);
  else if (type === 'double' || type === 'float') {
    ok =
      typeof value === 'number' ||
      (typeof value === 'string' && /^(NaN|-?Infinity|-?\d+(\.\d+)?([eE][-+]?\d+)?)$/.test(value));
  } else if (int32Types.has(type) || uint32Types.has(type) || int64Types.has(type)) {
    const number = typeof value === 'number' ? value : isIntegerText(value) ? Number(value) : NaN;
    ok = Number.isInteger(number) && (!uint32Types.has(type) || number >= 0);
    if (ok && (int32Types.has(type) || uint32Types.has(type))) {
      ok = uint32Types.has(type) ? number <= 0xffff_ffff : Math.abs(number) <= 0x7fff_ffff;
    }
    if (ok && type.startsWith('u') && number < 0) ok = false;
  } else {
    ok = false;
  }
  if (!ok) report(`expected ${type}, got ${describeValue(value)}`);
}

function checkAny(
  root: protobuf.Root,
  value: unknown,
  path: string,
  problems: ProtoJsonProblem[],
): void {
  if (!isPlainObject(value)) {
    problems.push({
      path,
      message: `expected an object with "@type", got ${describeValue(value)}`,
    });
    return;
  }
  const typeUrl = value['@type'];
  if (typeof typeUrl !== 'string' || !typeUrl.startsWith(typeUrlPrefix)) {
    problems.push({
      path: pathJoin(path, '@type'),
      message: `expected "${typeUrlPrefix}<message name>", got ${describeValue(typeUrl)}`,
    });
    return;
  }
  const name = typeUrl.slice(typeUrlPrefix.length);
  let type: protobuf.Type;
  try {
    type = root.lookupType(name);
  } catch {
    problems.push({ path: pathJoin(path, '@type'), message: `unknown message type ${name}` });
    return;
  }
  const rest = Object.fromEntries(Object.entries(value).filter(([key]) => key !== '@type'));
  const wellKnown = type.fullName.replace(/^\./, '');
  // Well-known types with a non-object JSON form sit under "value" inside an Any.
  const special =
    wrapperScalars[wellKnown] !== undefined ||
    wellKnown === 'google.protobuf.Duration' ||
    wellKnown === 'google.protobuf.Timestamp' ||
    wellKnown === 'google.protobuf.FieldMask' ||
    wellKnown === 'google.protobuf.Struct' ||
    wellKnown === 'google.protobuf.Value' ||
    wellKnown === 'google.protobuf.ListValue' ||
    wellKnown === 'google.protobuf.Any';
  if (special) {
    const extra = Object.keys(rest).filter((key) => key !== 'value');
    for (const key of extra) {
      problems.push({ path: pathJoin(path, key), message: `unknown field in Any(${wellKnown})` });
    }
    checkMessage(root, type, rest['value'], pathJoin(path, 'value'), problems);
    return;
  }
  checkMessage(root, type, rest, path, problems);
}
