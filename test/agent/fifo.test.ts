import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseFifoLine } from '../../agent/src/fifo.js';
import { PEER, THIS_NODE, useAgentFixture, VIP } from './harness.js';

const t = useAgentFixture();

/** keepalived's FIFO as the fifo command reads it: lines, after a pause for warm-up if asked. */
function lines(texts: readonly string[], pauseMs = 0): () => AsyncIterable<string> {
  return async function* () {
    if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
    yield* texts;
  };
}

const commandNames = () => t.world.mock.calls().map((c) => c.args[0].constructor.name);

async function readState() {
  return JSON.parse(await readFile(join(t.sandbox.stateDir, 'state.json'), 'utf8'));
}

function peerHoldsEverything() {
  t.world.ips.set(VIP, PEER.networkInterfaceId);
  t.world.association = { eni: PEER.networkInterfaceId, ip: VIP };
}

describe('parseFifoLine', () => {
  it.each([
    ['INSTANCE "VI_EIP" MASTER 150', { type: 'INSTANCE', name: 'VI_EIP', state: 'MASTER' }],
    ['INSTANCE "VI_EIP" BACKUP 100\n', { type: 'INSTANCE', name: 'VI_EIP', state: 'BACKUP' }],
    ['GROUP "G1" FAULT', { type: 'GROUP', name: 'G1', state: 'FAULT' }],
    ['INSTANCE "VI 2" STOP 0', { type: 'INSTANCE', name: 'VI 2', state: 'STOP' }],
    ['INSTANCE "VI_EIP" DELETED 0', { type: 'INSTANCE', name: 'VI_EIP', state: 'STOP' }],
  ])('%j', (line, expected) => {
    expect(parseFifoLine(line)).toEqual(expected);
  });

  it.each([
    '',
    'INSTANCE VI_EIP MASTER 150',
    'INSTANCE "VI_EIP" LEADER 150',
    'RS "10.0.0.1" UP',
    'INSTANCE "VI_EIP" MASTER 150 extra',
  ])('not a transition: %j', (line) => {
    expect(parseFifoLine(line)).toBeNull();
  });
});

describe('fifo command (in-process, lines from a stand-in for the FIFO)', () => {
  it('MASTER takes over and verifies; the final BACKUP is recorded; EOF ends with exit 0', async () => {
    const result = await t.agent(['fifo', 'fifo-path'], {
      fifoLines: lines(['INSTANCE "VI_EIP" MASTER 150', 'INSTANCE "VI_EIP" BACKUP 150']),
    });
    expect(result.code, result.stderr).toBe(0);
    const state = await readState();
    expect(state.seq).toBe(2);
    expect(state.vrrpState).toBe('BACKUP');
    // The takeover started before BACKUP was recorded and stopped at its next step, or finished.
    expect(['verified', 'superseded']).toContain(state.lastTakeover.outcome);
  });

  it('ignores other instances and lines that are not transitions, and says so in the log', async () => {
    const result = await t.agent(['fifo', '--instance', 'VI_EIP', 'fifo-path'], {
      fifoLines: lines([
        'INSTANCE "VI_OTHER" MASTER 150',
        'garbage',
        'INSTANCE "VI_EIP" MASTER_RX_LOWER_PRI 150',
        'INSTANCE "VI_EIP" BACKUP 9',
      ]),
    });
    expect(result.code).toBe(0);
    expect(t.world.mutatingCalls()).toEqual([]);
    expect((await readState()).seq).toBe(1);
    expect(result.logs.map((l) => l.msg)).toContain('fifo: not a VRRP transition line; ignored');
  });

  it('after warm-up saw the address elsewhere, the move is the first call and one describe verifies it', async () => {
    peerHoldsEverything();
    const result = await t.agent(['fifo', 'fifo-path'], {
      fifoLines: lines(['INSTANCE "VI_EIP" MASTER 150'], 100),
    });
    expect(result.code, result.stderr).toBe(0);
    expect(t.world.association).toEqual({ eni: THIS_NODE.networkInterfaceId, ip: VIP });
    expect((await readState()).lastTakeover.outcome).toBe('verified');
    // Warm-up: one look (DescribeAddresses + the VIP's holder). Takeover: Assign, then the
    // DescribeAddresses that both shows the EIP followed the VIP and verifies it.
    expect(commandNames()).toEqual([
      'DescribeAddressesCommand',
      'DescribeNetworkInterfacesCommand',
      'AssignPrivateIpAddressesCommand',
      'DescribeAddressesCommand',
    ]);
  });
});

describe('one-shot takeover: the re-observation after the move doubles as verification', () => {
  it('failover from the peer: observe, assign, one DescribeAddresses, no remap', async () => {
    peerHoldsEverything();
    const result = await t.agent(['takeover']);
    expect(result.code).toBe(0);
    expect(commandNames()).toEqual([
      'DescribeAddressesCommand',
      'DescribeNetworkInterfacesCommand',
      'AssignPrivateIpAddressesCommand',
      'DescribeAddressesCommand',
    ]);
  });

  it('after AssociateAddress, verification still asks DescribeAddresses again', async () => {
    const result = await t.agent(['takeover']);
    expect(result.code).toBe(0);
    const names = commandNames();
    expect(names.slice(names.indexOf('AssociateAddressCommand'))).toEqual([
      'AssociateAddressCommand',
      'DescribeAddressesCommand',
    ]);
  });
});
