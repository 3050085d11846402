// Bundles src/index.ts and style/tk-spawn.css into ../jupyter_tk/hub/static/, where the hub
// inlines them into the spawn form.
import { build } from 'esbuild';

const outdir = '../jupyter_tk/hub/static';

await build({
  entryPoints: ['src/index.ts'],
  outfile: `${outdir}/tk-spawn.js`,
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2020'],
  legalComments: 'none'
});
await build({
  entryPoints: ['style/tk-spawn.css'],
  outfile: `${outdir}/tk-spawn.css`,
  bundle: true,
  minify: true
});
