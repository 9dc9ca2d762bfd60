import { defineConfig } from 'vitest/config';

// `npm run test:ansible` (and .ci/checks/30-ansible.sh): the Ansible role, its templates and the
// keepalived validation wrapper. Needs ansible-playbook and keepalived, and root (the role chowns
// the agent's directories); nothing here reaches a host other than this one.
export default defineConfig({
  test: {
    include: ['test/ansible/**/*.test.ts'],
    testTimeout: 180_000,
    hookTimeout: 300_000,
  },
});
