/**
 * DynamoDB's expression language, for the in-memory DynamoDB endpoint
 * (testkit/aws/dynamodb-memory.ts): condition, key-condition and filter expressions, and update
 * expressions (SET with `+`/`-`, `if_not_exists`, `list_append`; REMOVE; ADD; DELETE), with
 * `#name` and `:value` placeholders and nested paths (`#m.#t`, `a[0]`), as the DynamoDB Developer
 * Guide describes them ("Condition and filter expressions, operators, and functions", "Update
 * expressions"). Comparisons follow DynamoDB: numbers by value, strings and binaries by their
 * bytes; an attribute of another type than the value it is compared with fails the comparison.
 *
 * What it does not do: the size limits of expressions, and the validation errors DynamoDB gives
 * for reserved words used as plain attribute names (`counter`, `status`, ...: popdrain's adapters
 * name such attributes through `#placeholders`, and the dynalite tests would catch one that did
 * not), unused placeholders or overlapping paths. A malformed expression throws `ExpressionError`,
 * which the endpoint answers as a ValidationException.
 */

/** An attribute value in DynamoDB's JSON form. */
export type AttributeValue =
  | { S: string }
  | { N: string }
  | { B: string }
  | { BOOL: boolean }
  | { NULL: true }
  | { M: Item }
  | { L: AttributeValue[] }
  | { SS: string[] }
  | { NS: string[] }
  | { BS: string[] };
export type Item = Record<string, AttributeValue>;

export class ExpressionError extends Error {}

export interface Placeholders {
  names?: Record<string, string> | undefined;
  values?: Item | undefined;
}

type PathStep = string | number;
type Operand =
  | { kind: 'path'; path: PathStep[] }
  | { kind: 'value'; value: AttributeValue }
  | { kind: 'call'; name: string; args: Operand[] }
  | { kind: 'arith'; op: '+' | '-'; left: Operand; right: Operand };
type Condition =
  | { kind: 'compare'; op: string; left: Operand; right: Operand }
  | { kind: 'between'; operand: Operand; low: Operand; high: Operand }
  | { kind: 'in'; operand: Operand; list: Operand[] }
  | { kind: 'function'; name: string; args: Operand[] }
  | { kind: 'and' | 'or'; left: Condition; right: Condition }
  | { kind: 'not'; inner: Condition };

const TOKEN = /\s*(#[A-Za-z0-9_]+|:[A-Za-z0-9_]+|[A-Za-z_][A-Za-z0-9_]*|[0-9]+|<>|<=|>=|[=<>(),.[\]+-])/y;

function tokenize(text: string): string[] {
  const tokens: string[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < text.length) {
    if (/^\s*$/.test(text.slice(TOKEN.lastIndex))) break;
    const at = TOKEN.lastIndex;
    const match = TOKEN.exec(text);
    if (match === null) throw new ExpressionError(`Invalid expression: unexpected character at ${at}: ${text}`);
    tokens.push(match[1]!);
  }
  return tokens;
}

class Parser {
  private at = 0;
  constructor(
    private readonly tokens: string[],
    private readonly placeholders: Placeholders,
    private readonly text: string,
  ) {}

  done(): boolean {
    return this.at >= this.tokens.length;
  }
  peek(): string | undefined {
    return this.tokens[this.at];
  }
  upper(): string | undefined {
    return this.peek()?.toUpperCase();
  }
  take(expected?: string): string {
    const token = this.tokens[this.at];
    if (token === undefined || (expected !== undefined && token.toUpperCase() !== expected)) {
      throw new ExpressionError(`Invalid expression: expected ${expected ?? 'more'} at token ${this.at} (${token ?? 'end'}): ${this.text}`);
    }
    this.at += 1;
    return token;
  }

  condition(): Condition {
    let left = this.conjunction();
    while (this.upper() === 'OR') {
      this.take();
      left = { kind: 'or', left, right: this.conjunction() };
    }
    return left;
  }
  private conjunction(): Condition {
    let left = this.negation();
    while (this.upper() === 'AND') {
      this.take();
      left = { kind: 'and', left, right: this.negation() };
    }
    return left;
  }
  private negation(): Condition {
    if (this.upper() === 'NOT') {
      this.take();
      return { kind: 'not', inner: this.negation() };
    }
    return this.predicate();
  }
  private predicate(): Condition {
    if (this.peek() === '(') {
      this.take();
      const inner = this.condition();
      this.take(')');
      return inner;
    }
    const token = this.peek() ?? '';
    if (CONDITION_FUNCTIONS.has(token.toLowerCase()) && this.tokens[this.at + 1] === '(') {
      this.take();
      return { kind: 'function', name: token.toLowerCase(), args: this.arguments() };
    }
    const left = this.operand();
    const op = this.upper();
    if (op === 'BETWEEN') {
      this.take();
      const low = this.operand();
      this.take('AND');
      return { kind: 'between', operand: left, low, high: this.operand() };
    }
    if (op === 'IN') {
      this.take();
      return { kind: 'in', operand: left, list: this.arguments() };
    }
    if (op === undefined || !['=', '<>', '<', '<=', '>', '>='].includes(op)) {
      throw new ExpressionError(`Invalid expression: a comparison was expected after an operand: ${this.text}`);
    }
    this.take();
    return { kind: 'compare', op, left, right: this.operand() };
  }
  arguments(): Operand[] {
    this.take('(');
    const args = [this.value()];
    while (this.peek() === ',') {
      this.take();
      args.push(this.value());
    }
    this.take(')');
    return args;
  }
  /** An operand, with `+`/`-` (update expressions only). */
  value(): Operand {
    const left = this.operand();
    const op = this.peek();
    if (op === '+' || op === '-') {
      this.take();
      return { kind: 'arith', op, left, right: this.operand() };
    }
    return left;
  }
  operand(): Operand {
    const token = this.peek() ?? '';
    if (token.startsWith(':')) {
      this.take();
      const value = this.placeholders.values?.[token];
      if (value === undefined) throw new ExpressionError(`An expression attribute value used in expression is not defined; attribute value: ${token}`);
      return { kind: 'value', value };
    }
    if (OPERAND_FUNCTIONS.has(token.toLowerCase()) && this.tokens[this.at + 1] === '(') {
      this.take();
      return { kind: 'call', name: token.toLowerCase(), args: this.arguments() };
    }
    return { kind: 'path', path: this.path() };
  }
  path(): PathStep[] {
    const steps: PathStep[] = [this.name()];
    for (;;) {
      if (this.peek() === '.') {
        this.take();
        steps.push(this.name());
      } else if (this.peek() === '[') {
        this.take();
        steps.push(Number(this.take()));
        this.take(']');
      } else return steps;
    }
  }
  private name(): string {
    const token = this.take();
    if (token.startsWith('#')) {
      const name = this.placeholders.names?.[token];
      if (name === undefined) throw new ExpressionError(`An expression attribute name used in the document path is not defined; attribute name: ${token}`);
      return name;
    }
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(token)) throw new ExpressionError(`Invalid expression: an attribute name was expected, not ${token}: ${this.text}`);
    return token;
  }
}

const CONDITION_FUNCTIONS = new Set(['attribute_exists', 'attribute_not_exists', 'attribute_type', 'begins_with', 'contains']);
const OPERAND_FUNCTIONS = new Set(['size', 'if_not_exists', 'list_append']);

function resolve(item: Item, path: PathStep[]): AttributeValue | undefined {
  let current: AttributeValue | undefined = item[path[0] as string];
  for (const step of path.slice(1)) {
    if (current === undefined) return undefined;
    if (typeof step === 'number') current = 'L' in current ? current.L[step] : undefined;
    else current = 'M' in current ? current.M[step] : undefined;
  }
  return current;
}

function evaluate(operand: Operand, item: Item): AttributeValue | undefined {
  switch (operand.kind) {
    case 'path':
      return resolve(item, operand.path);
    case 'value':
      return operand.value;
    case 'arith': {
      const left = evaluate(operand.left, item);
      const right = evaluate(operand.right, item);
      if (left === undefined || right === undefined || !('N' in left) || !('N' in right)) {
        throw new ExpressionError('An operand in the update expression has an incorrect data type');
      }
      return { N: String(operand.op === '+' ? Number(left.N) + Number(right.N) : Number(left.N) - Number(right.N)) };
    }
    case 'call': {
      const [a, b] = operand.args;
      if (operand.name === 'if_not_exists') return evaluate(a!, item) ?? evaluate(b!, item);
      if (operand.name === 'list_append') {
        const left = evaluate(a!, item);
        const right = evaluate(b!, item);
        if (left === undefined || right === undefined || !('L' in left) || !('L' in right)) throw new ExpressionError('list_append needs two lists');
        return { L: [...left.L, ...right.L] };
      }
      const value = evaluate(a!, item);
      if (value === undefined) return undefined;
      if ('S' in value) return { N: String(Buffer.byteLength(value.S)) };
      if ('B' in value) return { N: String(Buffer.from(value.B, 'base64').length) };
      if ('L' in value) return { N: String(value.L.length) };
      if ('M' in value) return { N: String(Object.keys(value.M).length) };
      if ('SS' in value) return { N: String(value.SS.length) };
      if ('NS' in value) return { N: String(value.NS.length) };
      if ('BS' in value) return { N: String(value.BS.length) };
      return undefined;
    }
  }
}

/** -1, 0, 1, or undefined when the two cannot be ordered (different or unordered types). */
function order(a: AttributeValue, b: AttributeValue): number | undefined {
  if ('N' in a && 'N' in b) return Math.sign(Number(a.N) - Number(b.N));
  if ('S' in a && 'S' in b) return Buffer.compare(Buffer.from(a.S), Buffer.from(b.S));
  if ('B' in a && 'B' in b) return Buffer.compare(Buffer.from(a.B, 'base64'), Buffer.from(b.B, 'base64'));
  return undefined;
}

export function sameValue(a: AttributeValue | undefined, b: AttributeValue | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  const ordered = order(a, b);
  if (ordered !== undefined) return ordered === 0;
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(value: AttributeValue): unknown {
  if ('M' in value) return { M: Object.fromEntries(Object.keys(value.M).sort().map((k) => [k, canonical(value.M[k]!)])) };
  if ('L' in value) return { L: value.L.map(canonical) };
  if ('SS' in value) return { SS: [...value.SS].sort() };
  if ('NS' in value) return { NS: value.NS.map(Number).sort((x, y) => x - y) };
  if ('BS' in value) return { BS: [...value.BS].sort() };
  return value;
}

function test(condition: Condition, item: Item): boolean {
  switch (condition.kind) {
    case 'and':
      return test(condition.left, item) && test(condition.right, item);
    case 'or':
      return test(condition.left, item) || test(condition.right, item);
    case 'not':
      return !test(condition.inner, item);
    case 'in': {
      const value = evaluate(condition.operand, item);
      return condition.list.some((candidate) => sameValue(value, evaluate(candidate, item)));
    }
    case 'between': {
      const value = evaluate(condition.operand, item);
      const low = evaluate(condition.low, item);
      const high = evaluate(condition.high, item);
      if (value === undefined || low === undefined || high === undefined) return false;
      const above = order(value, low);
      const below = order(value, high);
      return above !== undefined && below !== undefined && above >= 0 && below <= 0;
    }
    case 'compare': {
      const left = evaluate(condition.left, item);
      const right = evaluate(condition.right, item);
      if (condition.op === '=') return sameValue(left, right);
      // A missing attribute is unequal to every value (dynalite answers so, as DynamoDB does).
      if (condition.op === '<>') return !sameValue(left, right);
      if (left === undefined || right === undefined) return false;
      const ordered = order(left, right);
      if (ordered === undefined) return false;
      return condition.op === '<' ? ordered < 0 : condition.op === '<=' ? ordered <= 0 : condition.op === '>' ? ordered > 0 : ordered >= 0;
    }
    case 'function': {
      const [first, second] = condition.args;
      const value = evaluate(first!, item);
      if (condition.name === 'attribute_exists') return value !== undefined;
      if (condition.name === 'attribute_not_exists') return value === undefined;
      const other = second === undefined ? undefined : evaluate(second, item);
      if (value === undefined || other === undefined) return false;
      if (condition.name === 'attribute_type') return 'S' in other && Object.keys(value)[0] === other.S;
      if (condition.name === 'begins_with') {
        if ('S' in value && 'S' in other) return value.S.startsWith(other.S);
        if ('B' in value && 'B' in other) return Buffer.from(value.B, 'base64').subarray(0, Buffer.from(other.B, 'base64').length).equals(Buffer.from(other.B, 'base64'));
        return false;
      }
      // contains
      if ('S' in value && 'S' in other) return value.S.includes(other.S);
      if ('SS' in value && 'S' in other) return value.SS.includes(other.S);
      if ('NS' in value && 'N' in other) return value.NS.some((n) => Number(n) === Number(other.N));
      if ('L' in value) return value.L.some((element) => sameValue(element, other));
      return false;
    }
  }
}

/** A condition (or filter, or key condition) expression, parsed once, tested against items. */
export function parseCondition(text: string, placeholders: Placeholders): (item: Item) => boolean {
  const parser = new Parser(tokenize(text), placeholders, text);
  const condition = parser.condition();
  if (!parser.done()) throw new ExpressionError(`Invalid expression: unexpected ${parser.peek()}: ${text}`);
  return (item) => test(condition, item);
}

function setPath(item: Item, path: PathStep[], value: AttributeValue): void {
  if (path.length === 1) {
    item[path[0] as string] = value;
    return;
  }
  const parent = resolve(item, path.slice(0, -1));
  const last = path[path.length - 1]!;
  if (parent !== undefined && typeof last === 'string' && 'M' in parent) parent.M[last] = value;
  else if (parent !== undefined && typeof last === 'number' && 'L' in parent) {
    if (last < parent.L.length) parent.L[last] = value;
    else parent.L.push(value);
  } else throw new ExpressionError('The document path provided in the update expression is invalid for update');
}

function removePath(item: Item, path: PathStep[]): void {
  if (path.length === 1) {
    delete item[path[0] as string];
    return;
  }
  const parent = resolve(item, path.slice(0, -1));
  const last = path[path.length - 1]!;
  if (parent !== undefined && typeof last === 'string' && 'M' in parent) delete parent.M[last];
  else if (parent !== undefined && typeof last === 'number' && 'L' in parent) parent.L.splice(last, 1);
}

/**
 * An update expression applied to a copy of `item` (the caller's item is not changed). Every
 * operand is evaluated against the item as it was before the update, as DynamoDB does.
 */
export function applyUpdate(text: string, placeholders: Placeholders, item: Item): Item {
  const parser = new Parser(tokenize(text), placeholders, text);
  const before: Item = structuredClone(item);
  const after: Item = structuredClone(item);
  const seen = new Set<string>();
  while (!parser.done()) {
    const clause = parser.take().toUpperCase();
    if (seen.has(clause)) throw new ExpressionError(`Invalid UpdateExpression: the ${clause} section can only be used once`);
    seen.add(clause);
    for (;;) {
      const path = parser.path();
      if (clause === 'SET') {
        parser.take('=');
        const value = evaluate(parser.value(), before);
        if (value === undefined) throw new ExpressionError('The provided expression refers to an attribute that does not exist in the item');
        setPath(after, path, value);
      } else if (clause === 'REMOVE') removePath(after, path);
      else if (clause === 'ADD' || clause === 'DELETE') {
        const operand = evaluate(parser.operand(), before)!;
        const current = resolve(before, path);
        setPath(after, path, addOrDelete(clause, current, operand));
      } else throw new ExpressionError(`Invalid UpdateExpression: unknown clause ${clause}`);
      if (parser.peek() !== ',') break;
      parser.take();
    }
  }
  for (const [name, value] of Object.entries(after)) {
    if (('SS' in value && value.SS.length === 0) || ('NS' in value && value.NS.length === 0) || ('BS' in value && value.BS.length === 0)) delete after[name];
  }
  return after;
}

function addOrDelete(clause: string, current: AttributeValue | undefined, operand: AttributeValue): AttributeValue {
  if ('N' in operand && clause === 'ADD') return { N: String(Number(current !== undefined && 'N' in current ? current.N : 0) + Number(operand.N)) };
  for (const key of ['SS', 'NS', 'BS'] as const) {
    if (key in operand) {
      const base = current !== undefined && key in current ? ((current as Record<string, string[]>)[key] ?? []) : [];
      const change = (operand as Record<string, string[]>)[key]!;
      const next = clause === 'ADD' ? [...new Set([...base, ...change])] : base.filter((v) => !change.includes(v));
      return { [key]: next } as AttributeValue;
    }
  }
  throw new ExpressionError(`Invalid UpdateExpression: ${clause} needs a number or a set`);
}
