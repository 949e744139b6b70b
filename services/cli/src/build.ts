// `pnpm build`: the plantwatt command compiled to plain JavaScript, so that `up` and its broker
// workers run under `node` alone instead of `node --import tsx` (issue 16). Under tsx every process
// also carries tsx's loader thread, an esbuild service child and the transformed sources with their
// source maps: about 60 MB of PSS per process before any device connects (docs/benchmarks.md).
//
// Two bundles, main.js and worker-main.js (the broker worker's entry, cluster/worker-main.ts), hold
// plantwatt's own TypeScript (the CLI and the workspace packages it imports). Third-party packages
// are not bundled: each import is resolved at build time exactly as from its importer and kept as a
// relative path into node_modules, so native modules (LevelDB, LMDB), optional requires and files a
// package reads beside itself behave as they do from sources. The bundles are therefore tied to
// this checkout's node_modules: rebuild after `pnpm install` (the start script builds every time;
// it takes about a second).

import { readFile } from 'node:fs/promises'
import { builtinModules } from 'node:module'
import { dirname, join, relative, sep } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { build, type Metafile, type Plugin } from 'esbuild'

const CLI_SRC = dirname(fileURLToPath(import.meta.url))
/** Where `pnpm build` writes, and where `pnpm start` and the benchmarks look. */
export const DEFAULT_OUT_DIR = join(CLI_SRC, '..', 'dist')

const BUILTINS = new Set(builtinModules)
const RESOLVING = Symbol('resolving')

/**
 * Third-party imports stay imports, of the file esbuild resolves for them from where they are
 * written (pnpm gives each workspace package its own node_modules), as a path relative to the
 * output directory.
 */
function externalPackages(outDir: string): Plugin {
  return {
    name: 'plantwatt-external-packages',
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (args.kind === 'entry-point' || args.pluginData === RESOLVING) return undefined
        if (args.path.startsWith('node:') || BUILTINS.has(args.path)) return { path: args.path, external: true }
        if (args.path.startsWith('@plantwatt/')) return undefined // bundled: plantwatt's own sources
        const resolved = await b.resolve(args.path, {
          kind: args.kind,
          importer: args.importer,
          resolveDir: args.resolveDir,
          pluginData: RESOLVING,
        })
        if (resolved.errors.length > 0) return { errors: resolved.errors }
        let path = relative(outDir, resolved.path).split(sep).join('/')
        if (!path.startsWith('.')) path = `./${path}`
        return { path, external: true }
      })
    },
  }
}

/**
 * A workspace module that finds files beside itself (the gateway's dashboard, the simulator's
 * worker scripts, a createRequire) keeps its source location: its `import.meta.url` becomes the URL
 * of its source file. The CLI's own modules keep the bundle's, so that the primary finds the
 * worker's bundle beside its own (cluster/primary.ts).
 */
function sourceLocations(): Plugin {
  return {
    name: 'plantwatt-source-locations',
    setup(b) {
      b.onLoad({ filter: /\.ts$/ }, async (args) => {
        const text = await readFile(args.path, 'utf8')
        if (args.path.startsWith(CLI_SRC + sep) || !text.includes('import.meta.url'))
          return { contents: text, loader: 'ts' }
        const url = JSON.stringify(pathToFileURL(args.path).href)
        return { contents: text.replaceAll('import.meta.url', url), loader: 'ts' }
      })
    },
  }
}

export interface BuildResult {
  outDir: string
  /** What went into the bundles, by input (esbuild's metafile). */
  metafile: Metafile
}

/**
 * Builds main.js and worker-main.js into `outDir`; `extraEntries` (output name → source file) adds
 * other scripts built the same way, e.g. a benchmark's `--import` preload for the built command.
 */
export async function buildCli(
  outDir = DEFAULT_OUT_DIR,
  extraEntries: Record<string, string> = {},
): Promise<BuildResult> {
  const result = await build({
    entryPoints: {
      main: join(CLI_SRC, 'main.ts'),
      'worker-main': join(CLI_SRC, 'cluster', 'worker-main.ts'),
      ...extraEntries,
    },
    outdir: outDir,
    outExtension: { '.js': '.js' },
    bundle: true,
    splitting: false,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // Source maps as files, for reading stack traces; not loaded (node --enable-source-maps would).
    sourcemap: 'linked',
    metafile: true,
    logLevel: 'warning',
    plugins: [externalPackages(outDir), sourceLocations()],
  })
  return { outDir, metafile: result.metafile }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { outDir } = await buildCli(process.argv[2] ?? DEFAULT_OUT_DIR)
  process.stdout.write(`plantwatt built into ${outDir}\n`)
}
