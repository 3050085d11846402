import { defineConfig } from 'vitest/config';

// Unit tests of the pure logic (formatting, history, grouping, examples tree). They
// import no JupyterLab package, so plain Node is enough.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node'
  }
});
