/**
 * The metrics the Lambdas publish with Powertools Metrics, as CloudWatch sees them: one
 * namespace, one `service` dimension (failures add `errorCode`; the opt-in per-mailbox series add
 * `mailbox`).
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';

/** The metric namespace and `service` dimension the Lambdas' Powertools Metrics use. */
export const METRIC_NAMESPACE = 'popdrain';
export const SERVICE_NAME = 'popdrain';

/** An aggregate popdrain metric (dimension `service` only). */
export function popdrainMetric(metricName: string, statistic: string, period = Duration.minutes(5)): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: METRIC_NAMESPACE,
    metricName,
    dimensionsMap: { service: SERVICE_NAME },
    statistic,
    period,
  });
}

/** The `Failures` metric of one error code (dimensions `service` + `errorCode`). */
export function failureMetric(errorCode: string, period = Duration.minutes(5)): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: METRIC_NAMESPACE,
    metricName: 'Failures',
    dimensionsMap: { service: SERVICE_NAME, errorCode },
    statistic: 'Sum',
    period,
  });
}
