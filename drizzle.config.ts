import { defineConfig } from 'drizzle-kit';

// Migrations are generated from schema/ and applied by `molecule-operator migrate`.
export default defineConfig({
  dialect: 'postgresql',
  schema: './schema/index.ts',
  out: './drizzle',
});
