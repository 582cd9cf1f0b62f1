/**
 * The id cdk-nag (3.x) gives one finding of a rule that reports findings per value, such as
 * `AwsSolutions-IAM5[Resource::<Bucket1234.Arn>/messages/*]`. cdk-nag 3 acknowledges findings
 * one by one, by that exact id; a construct that knows which of its own resources carry a
 * justified wildcard computes the id here instead of spelling a hashed logical id.
 *
 * The flattening mirrors cdk-nag's `flattenCfnReference` (lib/utils/flatten-cfn-reference.js):
 * `Fn::Join` joined, `Fn::GetAtt` as `<LogicalId.Attribute>`, `Ref` as `<LogicalId>`.
 */
import { Stack } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

function flatten(node: unknown): string {
  if (node === undefined) return '';
  if (typeof node === 'string') return node.replace(/\$\{/g, '<').replace(/\}/g, '>');
  if (node !== null && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    if (Array.isArray(o['Fn::Join'])) {
      const [delimiter, items] = o['Fn::Join'] as [string, unknown[]];
      return items.map(flatten).join(delimiter);
    }
    if (o['Fn::Sub'] !== undefined) return flatten(o['Fn::Sub']);
    if (Array.isArray(o['Fn::GetAtt'])) {
      const [resource, attribute] = o['Fn::GetAtt'] as [unknown, unknown];
      return `<${flatten(resource)}.${flatten(attribute)}>`;
    }
    if (o['Fn::ImportValue'] !== undefined) return flatten(o['Fn::ImportValue']);
    if (o.Ref !== undefined) return `<${flatten(o.Ref)}>`;
  }
  return JSON.stringify(node);
}

/** The cdk-nag finding id of an IAM statement resource (a string or token) with a wildcard. */
export function wildcardResourceFinding(scope: IConstruct, resource: string): string {
  return `AwsSolutions-IAM5[Resource::${flatten(Stack.of(scope).resolve(resource))}]`;
}
