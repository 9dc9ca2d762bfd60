import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './helpers.js';

// The README's "Role variables" must not drift from the role's defaults.
describe('README, "Role variables"', () => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const defaults = readFileSync(
    join(repoRoot, 'ansible/roles/keepalived_eip/defaults/main.yml'),
    'utf8',
  );
  const section = readme.slice(readme.indexOf('### Role variables'));
  const variables = [...defaults.matchAll(/^(keepalived_eip_\w+):/gm)].map((m) => m[1]);

  it('shows the defaults block as defaults/main.yml has it, without comments', () => {
    const block = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
    const expected = defaults
      .split('\n')
      .filter((line) => line !== '---' && !/^\s*#/.test(line))
      .join('\n')
      .replace(/\n{3,}/g, '\n\n')
      .trim();
    expect(block?.trim()).toBe(expected);
  });

  it('gives every variable its sentence', () => {
    expect(variables.length).toBeGreaterThan(40);
    for (const name of variables) expect(section).toContain(`- \`${name}\`: `);
  });
});
