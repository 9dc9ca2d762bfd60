import { defineConfig } from 'vitest/config';

// `npm test`: everything that needs Node (and the preinstalled moto for the emulator) only.
// Suites that need root, keepalived or Ansible have their own configs and run from .ci/run.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/ansible/**', 'test/drill/**', '**/node_modules/**'],
    testTimeout: 20_000,
    hookTimeout: 60_000,
    env: {
      // Never let an SDK default chain reach a real metadata service or account.
      AWS_ACCESS_KEY_ID: 'AKIDTESTONLY',
      AWS_SECRET_ACCESS_KEY: 'test-secret-only',
      AWS_REGION: 'eu-central-1',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_EC2_METADATA_SERVICE_ENDPOINT: 'http://127.0.0.1:9',
      AWS_ENDPOINT_URL_EC2: 'http://127.0.0.1:9',
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    },
  },
});
