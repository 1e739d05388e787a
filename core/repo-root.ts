// The repository root: where examples/, runs/ and the built addon are found, whether a module runs
// from source or from dist/.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir)
      throw new Error('cannot find the longctx repository root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
})();
