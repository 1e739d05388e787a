/* global module */
// The layering of the TypeScript sources (`make lint` runs it): every top-level folder may import
// only the folders below it, so arrows point one way and there is no cycle between folders.
// Tests and benchmarks may import anything. README.md ("Layout") explains the layers.
/** Each source folder and the folders it may import (itself aside). */
const LAYERS = {
  core: [],
  proto: ['core'],
  checkpoints: ['core'],
  data: ['core'],
  control: ['core', 'proto'],
  'worker-native': ['core', 'proto', 'checkpoints', 'data'],
  cluster: ['core', 'proto', 'checkpoints', 'control', 'worker-native'],
  eval: ['core', 'proto', 'checkpoints', 'data', 'control', 'worker-native', 'cluster'],
  orchestrator: ['core', 'proto', 'checkpoints', 'data', 'control', 'worker-native', 'cluster', 'eval'],
};
const FOLDERS = Object.keys(LAYERS);
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    ...FOLDERS.map((folder) => {
      const others = FOLDERS.filter((f) => f !== folder && !LAYERS[folder].includes(f));
      return {
        name: `layers-${folder}`,
        comment: `${folder}/ may import only ${LAYERS[folder].join(', ') || 'nothing outside itself'} (see .dependency-cruiser.cjs)`,
        severity: 'error',
        from: { path: `^${escape(folder)}/` },
        to: { path: `^(${others.map(escape).join('|')})/` },
      };
    }),
    {
      name: 'no-circular',
      comment: 'modules of the sources must not import each other in a cycle',
      severity: 'error',
      from: { path: `^(${FOLDERS.map(escape).join('|')})/` },
      to: { circular: true },
    },
    {
      name: 'sources-not-tests',
      comment: 'the sources never import tests or benchmarks',
      severity: 'error',
      from: { path: `^(${FOLDERS.map(escape).join('|')})/` },
      to: { path: '^(test|bench)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|build|node_modules)/|/gen/' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
  },
};
