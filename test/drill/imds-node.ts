/**
 * Runs inside one drill namespace: the IMDSv2 stub on 169.254.169.254:80 serving that instance's
 * identity and instance-profile credentials, with local-ipv4s read live from the EC2 emulator, as
 * on a real instance after a secondary IP moves.
 *
 *   ip netns exec eipd-a node --import tsx test/drill/imds-node.ts '<StubNode JSON>' <emulator URL>
 */
import { DescribeNetworkInterfacesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { instanceMetadata, type StubNode, startImdsStub } from '../support/imds-stub.js';

const [nodeJson, endpoint] = process.argv.slice(2);
if (nodeJson === undefined || endpoint === undefined) {
  process.stderr.write('usage: imds-node.ts <node JSON> <emulator URL>\n');
  process.exit(2);
}
const node = JSON.parse(nodeJson) as StubNode;
const ec2 = new EC2Client({
  endpoint,
  region: node.region,
  credentials: { accessKeyId: 'AKIDTESTONLY', secretAccessKey: 'test-secret-only' },
  maxAttempts: 2,
});

async function localIpv4s(): Promise<string[]> {
  const out = await ec2.send(
    new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: [node.networkInterfaceId] }),
  );
  const eni = out.NetworkInterfaces?.[0];
  const primary = eni?.PrivateIpAddresses?.filter((p) => p.Primary) ?? [];
  const secondary = eni?.PrivateIpAddresses?.filter((p) => !p.Primary) ?? [];
  return [...primary, ...secondary].flatMap((p) =>
    p.PrivateIpAddress ? [p.PrivateIpAddress] : [],
  );
}

const stub = await startImdsStub({
  host: '169.254.169.254',
  port: 80,
  metadata: instanceMetadata(node, localIpv4s),
});
process.stdout.write(`IMDS_READY ${stub.endpoint} ${node.instanceId}\n`);
const stop = () => {
  void stub.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
