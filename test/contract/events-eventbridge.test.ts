// The EventSink contract against the EventBridge sink with the real EventBridgeClient and the
// loopback AWS JSON endpoint, which enforces PutEvents' limits as the service does.
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { EventBridgeSink } from '../../lib/adapters/aws/eventbridge-sink.js';
import { startAwsJsonEndpoint, type AwsJsonEndpoint } from '../../testkit/aws/json-endpoint.js';
import { describeEventSinkContract } from './events-contract.js';

const FAKE_CREDENTIALS = { accessKeyId: 'AKIDCONTRACTFAKE', secretAccessKey: 'contract-fake-secret' };
let endpoint: AwsJsonEndpoint | undefined;
let closedUrl = '';
const clients: EventBridgeClient[] = [];

function sinkAt(url: string): EventBridgeSink {
  const client = new EventBridgeClient({ region: 'us-east-1', endpoint: url, credentials: FAKE_CREDENTIALS, maxAttempts: 1 });
  clients.push(client);
  return new EventBridgeSink({ client, eventBusName: 'popdrain-contract-bus', sleep: async () => {} });
}

describeEventSinkContract('EventBridgeSink', {
  setup: async () => {
    endpoint = await startAwsJsonEndpoint();
    // An endpoint that is gone: connections are refused.
    const closed = await startAwsJsonEndpoint();
    closedUrl = closed.url;
    await closed.close();
  },
  open: () => sinkAt(endpoint!.url),
  openBroken: () => sinkAt(closedUrl),
  delivered: async () =>
    endpoint!.putEventsBatches().flat().map((entry) => {
      const detail = JSON.parse(entry.Detail ?? '{}') as { id: string };
      return { id: detail.id, source: entry.Source ?? '', detailType: entry.DetailType ?? '', detail };
    }),
  teardown: async () => {
    for (const client of clients.splice(0)) client.destroy();
    await endpoint?.close();
  },
});
