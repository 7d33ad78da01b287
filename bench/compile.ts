/**
 * Transpiles the server code to plain JavaScript in a temporary folder, so the server children
 * run as production does (compiled JS, `node` without a TypeScript loader). Loading through tsx
 * would add its loader thread and compiled-source caches, about 20–35 MiB, to every RSS figure.
 *
 * Files keep their layout (src/…, bench/…) and their `.js` import specifiers work unchanged;
 * packages resolve through a `node_modules` symlink to the project's.
 */
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import ts from 'typescript';

/** Every `.ts` file (not `.d.ts`) under `dir`, recursively. */
function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return tsFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/**
 * Transpiles `src/` and the given bench files of `root` into `outDir`; returns `outDir`.
 * Type errors are not checked here (`npm run typecheck` does that); syntax errors stop the run.
 */
export function compileForBench(
  root: string,
  outDir: string,
  benchFiles: readonly string[],
): string {
  const files = [...tsFiles(join(root, 'src')), ...benchFiles.map((f) => join(root, 'bench', f))];
  for (const file of files) {
    const out = transpile(file);
    const target = join(outDir, relative(root, file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, out);
  }
  writeFileSync(join(outDir, 'package.json'), JSON.stringify({ type: 'module', private: true }));
  const modules = join(outDir, 'node_modules');
  if (!existsSync(modules)) symlinkSync(join(root, 'node_modules'), modules, 'dir');
  return outDir;
}

function transpile(file: string): string {
  const result = ts.transpileModule(readFileSync(file, 'utf8'), {
    fileName: file,
    reportDiagnostics: true,
    compilerOptions: {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      esModuleInterop: true,
      sourceMap: false,
    },
  });
  const errors = (result.diagnostics ?? []).filter(
    (d) => d.category === ts.DiagnosticCategory.Error,
  );
  if (errors.length) {
    const text = ts.flattenDiagnosticMessageText(errors[0]!.messageText, '\n');
    throw new Error(`cannot transpile ${file}: ${text}`);
  }
  return result.outputText;
}
