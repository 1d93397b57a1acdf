/**
 * The container images the test bed's real node runs, built on this machine:
 * there is no Docker and no registry, so nothing is pulled. Debian's buildah
 * builds each image in a storage of its own (vfs, under a temporary directory,
 * removed afterwards) and pushes it to an OCI archive in `<cacheDir>/images/`
 * whose index annotation carries the image's full name, the name
 * `ctr -n k8s.io images import` gives it.
 *
 * - nodeBase: a Debian root made from Debian's packages, with the Node binary of
 *   the `node` devDependency and npm; the base of the project's image.
 * - app: the project's own Dockerfile, built on nodeBase.
 * - dapr: daprd and Dapr's control plane in one image under six names; Dapr's
 *   chart runs `/<name>` from `<registry>/<name>:<tag>`.
 * - pause, coredns: static binaries from testbed/build.sh, FROM scratch.
 * - redis, postgres: Debian's servers, with the packages owning every shared
 *   library their files load.
 *
 * Every tag ends in a hash of what goes into the image (package versions,
 * files, binaries, this recipe), so an unchanged image costs a stat and a
 * changed input rebuilds it.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { cacheDir, goBinary, MissingPrerequisiteError, postgresBinDir, versions } from './prerequisites.ts';

export interface TestbedImage {
  /** Full reference, tag included, as a pod's `image:` names it. */
  name: string;
  /** OCI archive whose index annotation carries `name`. */
  archive: string;
  /** More full names of the same image, for the importer to tag after import. */
  aliases?: string[];
}

export interface TestbedImages {
  /** Debian's libc and the project's Node and npm: the base `app` is built on. */
  nodeBase: TestbedImage;
  /** The project's Dockerfile: the operator and the services. */
  app: TestbedImage;
  /**
   * `name` is `<registry>/operator:<tag>`; the aliases are injector, sentry,
   * placement, scheduler and daprd under the same registry and tag, Helm's
   * `global.registry` and `global.tag`.
   */
  dapr: TestbedImage;
  pause: TestbedImage;
  coredns: TestbedImage;
  redis: TestbedImage;
  postgres: TestbedImage;
}

const repoRoot = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
export const imagesDir = join(cacheDir, 'images');
/** Debian packages as downloaded, by name, version and architecture. */
const debsDir = join(cacheDir, 'debs');
const npmDir = join(cacheDir, 'npm');
const REGISTRY = 'localhost/taskapi-testbed';
/** The newest npm 11, the major Node 24 ships with (`npm view npm@11 version`). */
const NPM_VERSION = '11.21.2';
/** As the official images set it. */
const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const LOADER = '/lib64/ld-linux-x86-64.so.2';
const DAPR_CONTROL_PLANE = ['operator', 'injector', 'sentry', 'placement', 'scheduler'] as const;

const log = (message: string): void => {
  console.error(`[testbed/images] ${message}`);
};

/**
 * Builds the images whose inputs changed (or that were never built) and
 * returns all of them. Safe to call from several processes at once: one builds,
 * the others wait for it. The Go binaries come from testbed/build.sh; while it
 * is still running, this waits for the ones it needs.
 */
export async function ensureImages(): Promise<TestbedImages> {
  const debianImages = debianRecipes();
  const binaries = presentGoBinaries();
  if (binaries) {
    const all = { ...debianImages, ...goRecipes(binaries) };
    if (Object.values(all).every((recipe) => existsSync(recipe.image.archive))) return imagesOf(all);
  }
  mkdirSync(imagesDir, { recursive: true });
  const unlock = await lockImagesDir();
  const madeByBuilds = HOST_PATHS_BUILDS_MAKE.filter((path) => !existsSync(path));
  try {
    removeLeftovers();
    for (const recipe of Object.values(debianImages)) await ensureBuilt(recipe);
    const goImages = goRecipes(await builtGoBinaries());
    for (const recipe of Object.values(goImages)) await ensureBuilt(recipe);
    return imagesOf({ ...debianImages, ...goImages });
  } finally {
    for (const path of madeByBuilds) rmSync(path, { recursive: true, force: true });
    unlock();
  }
}

/**
 * What buildah and runc create on the host whatever their storage flags: runc's
 * state root (RUN steps) and containers/image's blob-info cache. A build that
 * made them removes them again.
 */
const HOST_PATHS_BUILDS_MAKE = ['/run/runc', '/var/lib/containers'];

// ---------------------------------------------------------------------------
// Recipes

interface Recipe {
  /** Short name, for logs and the archive's file name. */
  id: string;
  image: TestbedImage;
  /** Leaves an image named `image.name` in `buildah`'s storage. */
  build(buildah: Buildah): Promise<void>;
}

interface RecipeOptions {
  id: string;
  /** Under REGISTRY: the first names the image, the others are aliases. */
  repositories: string[];
  /** The tag's first part, when the image has a version of its own. */
  version?: string;
  /** Everything else that goes into the image, one line each. */
  inputs: string[];
  build(buildah: Buildah, name: string): Promise<void>;
}

function recipe(options: RecipeOptions): Recipe {
  const hash = createHash('sha256')
    .update([`recipe ${recipeSource()}`, ...options.inputs].join('\n'))
    .digest('hex')
    .slice(0, 12);
  const tag = options.version ? `${options.version}-${hash}` : hash;
  const [first, ...rest] = options.repositories.map((repository) => `${REGISTRY}/${repository}:${tag}`);
  if (!first) throw new Error(`image ${options.id} has no repository`);
  return {
    id: options.id,
    image: {
      name: first,
      archive: join(imagesDir, `${options.id}_${tag}.oci.tar`),
      ...(rest.length > 0 ? { aliases: rest } : {}),
    },
    build: (buildah) => options.build(buildah, first),
  };
}

/** This file: how the images are made is an input of each of them. */
let recipeDigest: string | undefined;
function recipeSource(): string {
  recipeDigest ??= sha256(readFileSync(fileURLToPath(import.meta.url)));
  return recipeDigest;
}

function debianRecipes(): { nodeBase: Recipe; app: Recipe; redis: Recipe; postgres: Recipe } {
  const nodeBase = nodeRecipe();
  return { nodeBase, app: appRecipe(nodeBase), redis: redisRecipe(), postgres: postgresRecipe() };
}

interface GoBinaries {
  pause: string;
  coredns: string;
  /** Each program of Dapr's image, installed as /<program>. */
  dapr: { program: string; path: string }[];
}

function goRecipes(binaries: GoBinaries): { pause: Recipe; coredns: Recipe; dapr: Recipe } {
  return { pause: pauseRecipe(binaries.pause), coredns: corednsRecipe(binaries.coredns), dapr: daprRecipe(binaries) };
}

function imagesOf(recipes: Record<keyof TestbedImages, Recipe>): TestbedImages {
  return {
    nodeBase: recipes.nodeBase.image,
    app: recipes.app.image,
    dapr: recipes.dapr.image,
    pause: recipes.pause.image,
    coredns: recipes.coredns.image,
    redis: recipes.redis.image,
    postgres: recipes.postgres.image,
  };
}

const NONROOT: Account = { name: 'nonroot', id: 65532, home: '/home/nonroot' };

function nodeRecipe(): Recipe {
  const packageDir = join(repoRoot, 'node_modules', 'node');
  const nodeBinary = join(packageDir, 'bin', 'node');
  if (!existsSync(nodeBinary)) {
    throw new MissingPrerequisiteError(
      `the Node binary of the \`node\` devDependency (${nodeBinary})`,
      'Run `npm ci`.',
    );
  }
  const { version } = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { version: string };
  const root: DebianRoot = {
    // coreutils for /usr/bin/env: npm's and the packages' bin scripts start with `#!/usr/bin/env node`.
    packages: ['libc6', 'libgcc-s1', 'libstdc++6', 'dash', 'coreutils', 'base-files', 'netbase', 'tzdata'],
    // The official image's `node` user.
    accounts: [{ name: 'node', id: 1000, home: '/home/node' }, NONROOT],
  };
  return recipe({
    id: 'node',
    repositories: ['node'],
    version,
    // By content: the binary is in this checkout's node_modules, whose path and mtimes every clone changes
    // (a fresh-clone CI run rebuilt this image, and the app's on top of it, each time).
    inputs: [...debianRootInputs(root), `node ${sha256(readFileSync(nodeBinary))}`, `npm ${NPM_VERSION}`],
    build: async (buildah, name) => {
      const { container, root: dir } = await buildah.fromScratch();
      await assembleDebianRoot(dir, root, [nodeBinary], buildah.scratch);
      installFile(nodeBinary, join(dir, 'usr/local/bin/node'), 0o755);
      await installNpm(dir, buildah.scratch);
      await verifyLibraries(dir);
      const reported = (
        await command('node: node --version in the image', 'chroot', [dir, '/usr/local/bin/node', '--version'])
      ).trim();
      if (reported !== `v${version}`)
        throw new ImageBuildError(`node: the image's node says ${reported}, not v${version}`);
      await buildah.umount(container);
      await buildah.config(container, ['--env', PATH_ENV, '--env', `NODE_VERSION=${version}`, '--cmd', '["node"]']);
      await buildah.commit(container, name);
    },
  });
}

/** npm as the official image lays it out, from the registry's tarball of NPM_VERSION. */
async function installNpm(root: string, scratch: string): Promise<void> {
  const tarball = join(npmDir, `npm-${NPM_VERSION}.tgz`);
  if (!existsSync(tarball)) {
    mkdirSync(npmDir, { recursive: true });
    const packDir = mkdtempSync(join(scratch, 'npm-'));
    await command('node: npm pack', 'npm', ['pack', `npm@${NPM_VERSION}`, '--pack-destination', packDir], {
      cwd: packDir,
    });
    renameSync(join(packDir, `npm-${NPM_VERSION}.tgz`), tarball);
  }
  const npmRoot = join(root, 'usr/local/lib/node_modules/npm');
  mkdirSync(npmRoot, { recursive: true });
  await command('node: unpack npm', 'tar', ['-xzf', tarball, '--no-same-owner', '--strip-components=1', '-C', npmRoot]);
  for (const [link, script] of [
    ['npm', 'npm-cli.js'],
    ['npx', 'npx-cli.js'],
  ] as const) {
    chmodSync(join(npmRoot, 'bin', script), 0o755);
    symlinkSync(`../lib/node_modules/npm/bin/${script}`, join(root, 'usr/local/bin', link));
  }
}

function appRecipe(base: Recipe): Recipe {
  const files = ['Dockerfile', '.dockerignore', 'package.json', 'package-lock.json'];
  const tsconfigs = readdirSync(repoRoot).filter((entry) => /^tsconfig.*\.json$/.test(entry));
  return recipe({
    id: 'app',
    repositories: ['taskapi'],
    inputs: [
      `base ${base.image.name}`,
      ...[...files, ...tsconfigs].sort().map((file) => `${file} ${sha256(readFileSync(join(repoRoot, file)))}`),
      ...treeDigests(join(repoRoot, 'src')),
    ],
    build: async (buildah, name) => {
      await buildah.pull(base.image.archive);
      await buildah.run('buildah bud (npm ci, tsc)', [
        'bud',
        '--layers=false',
        '--pull=never',
        // RUN npm ci reaches the npm registry through the host's network.
        '--network',
        'host',
        '--isolation',
        'oci',
        '--format',
        'oci',
        '--build-arg',
        `NODE_IMAGE=${base.image.name}`,
        ...npmCaMounts(buildah.scratch),
        '--file',
        join(repoRoot, 'Dockerfile'),
        '--tag',
        name,
        repoRoot,
      ]);
      const container = await buildah.run('buildah from', ['from', '--pull=never', name]);
      const dir = await buildah.run('buildah mount', ['mount', container]);
      for (const entryPoint of ['dist/service/server.js', 'dist/controller/main.js', 'node_modules/fastify']) {
        if (!existsSync(join(dir, 'app', entryPoint))) {
          throw new ImageBuildError(`app: the built image has no /app/${entryPoint}`);
        }
      }
      await buildah.run('buildah rm', ['rm', container]);
    },
  });
}

/**
 * A machine whose egress goes through a TLS-inspecting proxy hands Node its CA
 * in NODE_EXTRA_CA_CERTS; npm in the build's RUN steps gets the same file
 * through a global npmrc mounted for those steps only (no RUN step is part of
 * the final stage, so neither file ends up in the image).
 */
function npmCaMounts(scratch: string): string[] {
  const ca = process.env['NODE_EXTRA_CA_CERTS'];
  if (!ca) return [];
  const npmrc = join(scratch, 'npmrc');
  writeFileSync(npmrc, 'cafile=/usr/local/etc/npm-ca.crt\n');
  return ['--volume', `${ca}:/usr/local/etc/npm-ca.crt:ro`, '--volume', `${npmrc}:/usr/local/etc/npmrc:ro`];
}

function redisRecipe(): Recipe {
  const root: DebianRoot = {
    // redis-server's /usr/bin/redis-server links to redis-tools' redis-check-rdb.
    packages: ['redis-server', 'redis-tools', 'dash', 'base-files', 'netbase', 'tzdata'],
    // config/backends/redis.yaml runs it as 999, the official image's `redis`; /data is its working directory.
    accounts: [{ name: 'redis', id: 999, home: '/data' }],
  };
  const version = upstreamVersion(installedPackage('redis-server').version);
  return recipe({
    id: 'redis',
    repositories: ['redis'],
    version,
    inputs: debianRootInputs(root),
    build: async (buildah, name) => {
      const { container, root: dir } = await buildah.fromScratch();
      await assembleDebianRoot(dir, root, [], buildah.scratch);
      await verifyLibraries(dir);
      const reported = await command('redis: redis-server --version in the image', 'chroot', [
        dir,
        '/usr/bin/redis-server',
        '--version',
      ]);
      if (!reported.includes(`v=${version}`))
        throw new ImageBuildError(`redis: the image's redis-server says ${reported}`);
      await buildah.umount(container);
      // The manifest's args go straight to redis-server, as with the official image.
      await buildah.config(container, [
        '--env',
        PATH_ENV,
        '--entrypoint',
        '["redis-server"]',
        '--user',
        '999:999',
        '--workingdir',
        '/data',
      ]);
      await buildah.commit(container, name);
    },
  });
}

function postgresRecipe(): Recipe {
  const binDir = postgresBinDir();
  const major = basename(dirname(binDir));
  const entrypoint = join(repoRoot, 'testbed', 'images', 'postgres-entrypoint.sh');
  const root: DebianRoot = {
    packages: [`postgresql-${major}`, 'dash', 'base-files', 'netbase', 'tzdata'],
    // initdb looks the current user up; 999 is the official image's `postgres`.
    accounts: [{ name: 'postgres', id: 999, home: '/var/lib/postgresql' }],
  };
  const version = upstreamVersion(installedPackage(`postgresql-${major}`).version);
  return recipe({
    id: 'postgres',
    repositories: ['postgres'],
    version,
    inputs: [...debianRootInputs(root), `entrypoint ${sha256(readFileSync(entrypoint))}`],
    build: async (buildah, name) => {
      const { container, root: dir } = await buildah.fromScratch();
      await assembleDebianRoot(dir, root, [], buildah.scratch);
      // As the official image prepares them: PGDATA's parent open to any user, the socket directory too.
      makeDirectory(join(dir, 'var/lib/postgresql/data'), 0o1777, 999);
      makeDirectory(join(dir, 'run/postgresql'), 0o3777, 999);
      installFile(entrypoint, join(dir, 'usr/local/bin/postgres-entrypoint.sh'), 0o755);
      await verifyLibraries(dir);
      const reported = await command('postgres: postgres --version in the image', 'chroot', [
        dir,
        join(binDir, 'postgres'),
        '--version',
      ]);
      if (!reported.includes(` ${version}`))
        throw new ImageBuildError(`postgres: the image's postgres says ${reported}`);
      await buildah.umount(container);
      await buildah.config(container, [
        '--env',
        `PATH=${binDir}:${PATH_ENV.slice('PATH='.length)}`,
        '--env',
        'PGDATA=/var/lib/postgresql/data',
        '--env',
        `PG_MAJOR=${major}`,
        '--entrypoint',
        '["/usr/local/bin/postgres-entrypoint.sh"]',
        '--cmd',
        '["postgres"]',
        '--user',
        '999:999',
        // PostgreSQL's "fast" shutdown, as the official image asks for.
        '--stop-signal',
        'SIGINT',
      ]);
      await buildah.commit(container, name);
    },
  });
}

function pauseRecipe(pause: string): Recipe {
  return recipe({
    id: 'pause',
    repositories: ['pause'],
    version: versions.KUBERNETES_VERSION,
    inputs: [`pause ${fileIdentity(pause)}`],
    build: async (buildah, name) => {
      const { container, root } = await buildah.fromScratch();
      installStaticBinary(pause, join(root, 'pause'));
      await buildah.umount(container);
      // As Kubernetes' own pause image.
      await buildah.config(container, ['--entrypoint', '["/pause"]', '--user', '65535:65535']);
      await buildah.commit(container, name);
    },
  });
}

function corednsRecipe(coredns: string): Recipe {
  return recipe({
    id: 'coredns',
    repositories: ['coredns'],
    version: versions.COREDNS_VERSION,
    inputs: [`coredns ${fileIdentity(coredns)}`],
    build: async (buildah, name) => {
      const { container, root } = await buildah.fromScratch();
      // Without the file capability CoreDNS's own image gives it (cap_net_bind_service=+ep): with
      // it, exec fails (EPERM) in a pod that drops ALL capabilities, as the test bed's does,
      // listening on an unprivileged port.
      installStaticBinary(coredns, join(root, 'coredns'));
      await buildah.umount(container);
      await buildah.config(container, ['--entrypoint', '["/coredns"]', '--user', '65532:65532', '--workingdir', '/']);
      await buildah.commit(container, name);
    },
  });
}

function daprRecipe(binaries: GoBinaries): Recipe {
  const programs = binaries.dapr;
  // A daprd built with cgo loads glibc: then the image is a Debian root with it.
  const root: DebianRoot = { packages: ['libc6', 'base-files', 'netbase', 'tzdata'], accounts: [NONROOT] };
  return recipe({
    id: 'dapr',
    repositories: programs.map(({ program }) => `dapr/${program}`),
    version: versions.DAPR_VERSION,
    inputs: [...debianRootInputs(root), ...programs.map(({ program, path }) => `${program} ${fileIdentity(path)}`)],
    build: async (buildah, name) => {
      const { container, root: dir } = await buildah.fromScratch();
      const dynamic = programs.filter(({ path }) => isDynamicElf(path)).map(({ path }) => path);
      if (dynamic.length > 0) {
        await assembleDebianRoot(dir, root, dynamic, buildah.scratch);
      } else {
        writeAccounts(dir, root.accounts);
        makeDirectory(join(dir, 'tmp'), 0o1777, 0);
      }
      for (const { program, path } of programs) installFile(path, join(dir, program), 0o755);
      if (dynamic.length > 0) await verifyLibraries(dir);
      await buildah.umount(container);
      // The chart's pods run as non-root with a read-only root: a numeric user, and the chart sets the command.
      await buildah.config(container, ['--env', PATH_ENV, '--user', '65532:65532', '--workingdir', '/']);
      await buildah.commit(container, name);
    },
  });
}

// ---------------------------------------------------------------------------
// Building one image

async function ensureBuilt(recipe: Recipe): Promise<void> {
  const { archive, name } = recipe.image;
  if (existsSync(archive)) return;
  const older = archivesOf(recipe.id);
  log(`building ${recipe.id} (${older.length > 0 ? 'inputs changed' : 'not built yet'}) -> ${name} ...`);
  const started = performance.now();
  const buildah = new Buildah(recipe.id);
  // Written aside and renamed when complete: an interrupted build leaves no archive under the final name.
  const partial = `${archive}.tmp-${process.pid}`;
  try {
    await recipe.build(buildah);
    await buildah.run('buildah push', ['push', name, `oci-archive:${partial}:${name}`]);
    renameSync(partial, archive);
  } finally {
    rmSync(partial, { force: true });
    buildah.dispose();
  }
  for (const old of older) rmSync(join(imagesDir, old), { force: true });
  const seconds = Math.round((performance.now() - started) / 1000);
  log(`${recipe.id} built in ${seconds}s: ${archive} (${Math.round(statSync(archive).size / 2 ** 20)} MiB)`);
}

/** The archives of one image, of any inputs. */
const archivesOf = (id: string): string[] =>
  readdirSync(imagesDir).filter((entry) => entry.startsWith(`${id}_`) && entry.endsWith('.oci.tar'));

/** A buildah storage of one build's own, never the machine's /var/lib/containers. */
class Buildah {
  readonly dir: string;
  /** For the build's own temporary files. */
  readonly scratch: string;
  private readonly id: string;
  private readonly globalOptions: string[];
  private readonly env: NodeJS.ProcessEnv;

  constructor(id: string) {
    this.id = id;
    this.dir = mkdtempSync(join(imagesDir, `build-${id}-`));
    this.scratch = join(this.dir, 'scratch');
    mkdirSync(this.scratch);
    mkdirSync(join(this.dir, 'tmp'));
    this.globalOptions = [
      '--root',
      join(this.dir, 'storage'),
      '--runroot',
      join(this.dir, 'run'),
      '--storage-driver',
      'vfs',
    ];
    // Layer blobs go through TMPDIR (/var/tmp by default).
    this.env = { ...process.env, TMPDIR: join(this.dir, 'tmp') };
  }

  async run(step: string, args: string[]): Promise<string> {
    return (
      await command(`${this.id}: ${step}`, 'buildah', [...this.globalOptions, ...args], { env: this.env })
    ).trim();
  }

  /** An empty container and its root file system (with vfs, a plain directory). */
  async fromScratch(): Promise<{ container: string; root: string }> {
    const container = await this.run('buildah from scratch', ['from', 'scratch']);
    return { container, root: await this.run('buildah mount', ['mount', container]) };
  }

  async umount(container: string): Promise<void> {
    await this.run('buildah umount', ['umount', container]);
  }

  async config(container: string, options: string[]): Promise<void> {
    await this.run('buildah config', ['config', ...options, container]);
  }

  async commit(container: string, name: string): Promise<void> {
    await this.run('buildah commit', ['commit', '--format', 'oci', '--rm', container, name]);
  }

  /** An image from an archive of ours; the archive's annotation names it. */
  async pull(archive: string): Promise<void> {
    await this.run('buildah pull', ['pull', `oci-archive:${archive}`]);
  }

  dispose(): void {
    unmountUnder(this.dir);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
// Debian roots from Debian's packages

interface Account {
  name: string;
  /** User and group id. */
  id: number;
  home: string;
}

interface DebianRoot {
  /**
   * Unpacked whole, without running maintainer scripts; the packages owning the
   * shared libraries their files (and the image's other programs) load come along.
   */
  packages: string[];
  /** Besides root and nobody. */
  accounts: Account[];
}

interface InstalledPackage {
  /** Without architecture: `libc6`. */
  name: string;
  /** As dpkg and apt name it: `libc6:amd64` for multi-arch "same" packages, else `tzdata`. */
  qualifiedName: string;
  version: string;
  architecture: string;
  /** Pre-Depends and Depends: package names, each group a list of alternatives. */
  depends: string[][];
  provides: string[];
}

let dpkgDatabase: Map<string, InstalledPackage> | undefined;
function installedPackages(): Map<string, InstalledPackage> {
  if (dpkgDatabase) return dpkgDatabase;
  const format =
    '${db:Status-Status}\t${Package}\t${binary:Package}\t${Version}\t${Architecture}\t${Provides}\t${Pre-Depends}, ${Depends}\n';
  const output = execFileSync('dpkg-query', ['--show', `--showformat=${format}`], { encoding: 'utf8' });
  const names = (field: string): string[][] =>
    field
      .split(',')
      .map((group) =>
        group
          .split('|')
          .flatMap((alternative) => alternative.trim().split(/[\s(:]/, 1))
          .filter(Boolean),
      )
      .filter((group) => group.length > 0);
  dpkgDatabase = new Map();
  for (const line of output.split('\n')) {
    const [status, name, qualifiedName, version, architecture, provides, depends] = line.split('\t');
    if (status !== 'installed' || !name || !qualifiedName || !version || !architecture) continue;
    dpkgDatabase.set(name, {
      name,
      qualifiedName,
      version,
      architecture,
      depends: names(depends ?? ''),
      provides: names(provides ?? '').flat(),
    });
  }
  return dpkgDatabase;
}

function installedPackage(name: string): InstalledPackage {
  const found = installedPackages().get(name);
  if (!found) {
    throw new MissingPrerequisiteError(`Debian package ${name}`, `Install it with \`apt-get install -y ${name}\`.`);
  }
  return found;
}

/**
 * Every installed package `roots` depend on, transitively. The libraries an
 * image needs are among them (Debian's shlibs put a library's package in
 * Depends), so their versions key the image without running ldd for it.
 */
function dependencyClosure(roots: string[]): Map<string, InstalledPackage> {
  const packages = installedPackages();
  const providers = new Map<string, InstalledPackage[]>();
  for (const pkg of packages.values()) {
    for (const virtual of pkg.provides) providers.set(virtual, [...(providers.get(virtual) ?? []), pkg]);
  }
  const closure = new Map<string, InstalledPackage>();
  const queue = roots.map((name) => installedPackage(name).name);
  for (let name = queue.pop(); name !== undefined; name = queue.pop()) {
    const found = packages.get(name);
    for (const pkg of found ? [found] : (providers.get(name) ?? [])) {
      if (closure.has(pkg.name)) continue;
      closure.set(pkg.name, pkg);
      queue.push(...pkg.depends.flat());
    }
  }
  return closure;
}

function debianRootInputs(root: DebianRoot): string[] {
  return [...dependencyClosure(root.packages).values()].map((pkg) => `deb ${pkg.qualifiedName}=${pkg.version}`).sort();
}

/** Fills `dir` with the packages of `root`, the packages their libraries come from, and the accounts. */
async function assembleDebianRoot(dir: string, root: DebianRoot, programs: string[], scratch: string): Promise<void> {
  const packages = await withLibraryPackages(root.packages, programs);
  const allowed = dependencyClosure(root.packages);
  const outside = packages.filter((pkg) => !allowed.has(pkg.name)).map((pkg) => pkg.name);
  if (outside.length > 0) {
    throw new ImageBuildError(
      `Debian root of ${root.packages.join(', ')}: the libraries need ${outside.join(', ')}, which none of these depends on; add them to the recipe`,
    );
  }
  await unpackPackages(packages, dir, scratch);
  mergeUsr(dir);
  writeSystemFiles(dir, root.accounts);
}

/** `names` plus the packages owning every library loaded by their files and by `programs`, transitively. */
async function withLibraryPackages(names: string[], programs: string[]): Promise<InstalledPackage[]> {
  const chosen = new Map<string, InstalledPackage>();
  let added = names.map(installedPackage);
  let objects = [...programs];
  while (added.length > 0 || objects.length > 0) {
    for (const pkg of added) {
      chosen.set(pkg.name, pkg);
      objects.push(...packageFiles(pkg).filter((path) => lstatSync(path).isFile() && isDynamicElf(path)));
    }
    const libraries = new Set<string>();
    for (const object of objects) for (const library of await loadedLibraries(object)) libraries.add(library);
    objects = [];
    added = [...new Set(await owners([...libraries]))].filter((pkg) => !chosen.has(pkg.name));
  }
  return [...chosen.values()].sort((a, b) => a.name.localeCompare(b.name));
}

function packageFiles(pkg: InstalledPackage): string[] {
  const listing = execFileSync('dpkg-query', ['--listfiles', pkg.qualifiedName], { encoding: 'utf8' });
  return listing.split('\n').filter((path) => path.startsWith('/') && path !== '/.' && existsSync(path));
}

/** What the dynamic loader maps for `object` on this machine (`root` unset) or inside `root`. */
async function loadedLibraries(object: string, root?: string): Promise<string[]> {
  const [file, args] = root ? ['chroot', [root, LOADER, '--list', object]] : [LOADER, ['--list', object]];
  const result = await tryCommand(file, args);
  const libraries: string[] = [];
  const missing: string[] = [];
  for (const line of result.stdout.split('\n')) {
    const mapped = /^\s*(\S+) => (.*?)(?: \(0x[0-9a-f]+\))?$/.exec(line);
    if (mapped?.[1] && mapped[2] === 'not found') missing.push(mapped[1]);
    else if (mapped?.[2]?.startsWith('/')) libraries.push(mapped[2]);
    const direct = /^\s*(\/\S+) \(0x[0-9a-f]+\)$/.exec(line);
    if (direct?.[1]) libraries.push(direct[1]);
  }
  if (missing.length > 0 || !result.ok) {
    const where = root ? `in ${root}` : 'on this machine';
    throw new ImageBuildError(
      `${object} ${where}: ${missing.length > 0 ? `libraries not found: ${missing.join(', ')}` : 'the dynamic loader failed'}`,
      tail(result.stderr || result.stdout),
    );
  }
  return libraries;
}

/** The installed packages that own `paths` (as the loader found them: /lib/... or /usr/lib/...). */
async function owners(paths: string[]): Promise<InstalledPackage[]> {
  if (paths.length === 0) return [];
  // Merged /usr: dpkg knows each file under the name its package ships it as.
  const aliases = (path: string): string[] => [path, path.startsWith('/usr/') ? path.slice(4) : `/usr${path}`];
  const result = await tryCommand('dpkg-query', ['--search', ...paths.flatMap(aliases)]);
  // Lines are `libc6:amd64: /path` (or `a, b: /path`); diversion lines name no installed package.
  const ownerOf = new Map<string, string[]>();
  for (const line of result.stdout.split('\n')) {
    const separator = line.indexOf(': /');
    if (separator < 0) continue;
    const path = line.slice(separator + 2);
    const names = line
      .slice(0, separator)
      .split(', ')
      .map((owner) => owner.split(':')[0] ?? owner);
    ownerOf.set(path, [...(ownerOf.get(path) ?? []), ...names]);
  }
  return paths.map((path) => {
    const names = aliases(path).flatMap((alias) => ownerOf.get(alias) ?? []);
    const pkg = names.map((name) => installedPackages().get(name)).find((found) => found !== undefined);
    if (!pkg) throw new ImageBuildError(`no installed Debian package owns ${path}`, tail(result.stderr));
    return pkg;
  });
}

/**
 * `dpkg-deb -x` of each package's .deb, downloaded at the installed version into
 * the cache of .debs. A version the mirror no longer carries (a point release
 * replaced it) is taken from this machine's installed files instead, once
 * `dpkg --verify` has shown them to be the package's own.
 */
async function unpackPackages(packages: InstalledPackage[], dir: string, scratch: string): Promise<void> {
  mkdirSync(debsDir, { recursive: true });
  const debOf = (pkg: InstalledPackage): string =>
    join(debsDir, `${pkg.name}_${pkg.version.replace(':', '%3a')}_${pkg.architecture}.deb`);
  const missing = packages.filter((pkg) => !existsSync(debOf(pkg)));
  const onMirror = await mirrorVersions(missing.map((pkg) => pkg.name));
  const toDownload = missing.filter((pkg) => onMirror.has(`${pkg.name}=${pkg.version}`));
  if (toDownload.length > 0) {
    log(`downloading ${toDownload.length} Debian packages`);
    const downloadDir = mkdtempSync(join(scratch, 'debs-'));
    await command(
      'apt-get download',
      'apt-get',
      ['download', '-o', 'APT::Sandbox::User=root', ...toDownload.map((pkg) => `${pkg.qualifiedName}=${pkg.version}`)],
      { cwd: downloadDir },
    );
    for (const pkg of toDownload) renameSync(join(downloadDir, basename(debOf(pkg))), debOf(pkg));
  }
  const fromMachine = packages.filter((pkg) => !existsSync(debOf(pkg)));
  if (fromMachine.length > 0) {
    const names = fromMachine.map((pkg) => `${pkg.name} ${pkg.version}`).join(', ');
    log(`not on the mirror at the installed version, so taken from this machine's installed files: ${names}`);
  }
  for (const pkg of packages) {
    if (existsSync(debOf(pkg))) await command(`dpkg-deb -x ${pkg.name}`, 'dpkg-deb', ['-x', debOf(pkg), dir]);
    else await copyInstalledPackage(pkg, dir, scratch);
  }
}

/** `name=version` of every version apt's sources offer. */
async function mirrorVersions(names: string[]): Promise<Set<string>> {
  if (names.length === 0) return new Set();
  const result = await tryCommand('apt-cache', ['madison', ...names]);
  const offered = new Set<string>();
  for (const line of result.stdout.split('\n')) {
    const [name, version, source] = line.split('|').map((field) => field.trim());
    if (name && version && source?.endsWith(' Packages')) offered.add(`${name}=${version}`);
  }
  return offered;
}

async function copyInstalledPackage(pkg: InstalledPackage, dir: string, scratch: string): Promise<void> {
  const changed = await tryCommand('dpkg', ['--verify', pkg.qualifiedName]);
  if (!changed.ok || changed.stdout.trim() !== '') {
    throw new ImageBuildError(
      `${pkg.qualifiedName} ${pkg.version}: not on the mirror, and this machine's copy differs from the package (dpkg --verify); \`apt-get install --reinstall\` or upgrade it`,
      tail(changed.stdout + changed.stderr),
    );
  }
  // The merged-/usr links of this machine (/lib -> usr/lib, ...) are made by mergeUsr, not copied.
  const merged = new Set(['/bin', '/sbin', '/lib', '/lib64']);
  const list = join(scratch, `${pkg.name}.files`);
  writeFileSync(
    list,
    packageFiles(pkg)
      .filter((path) => !merged.has(path))
      .map((path) => path.slice(1))
      .join('\n'),
  );
  const archive = join(scratch, `${pkg.name}.tar`);
  await command(`copy ${pkg.name}`, 'tar', ['-C', '/', '--no-recursion', '-cf', archive, '-T', list]);
  await command(`copy ${pkg.name}`, 'tar', ['-C', dir, '-xf', archive]);
  rmSync(archive);
}

/** Bookworm is merged-/usr: /bin, /sbin, /lib and /lib64 are links into /usr, as usrmerge leaves them. */
function mergeUsr(dir: string): void {
  for (const top of ['bin', 'sbin', 'lib', 'lib64']) {
    const path = join(dir, top);
    const target = join(dir, 'usr', top);
    mkdirSync(target, { recursive: true });
    const stat = existsSync(path) ? lstatSync(path) : undefined;
    if (stat?.isDirectory()) {
      moveInto(path, target);
      rmdirSync(path);
    } else if (stat) {
      rmSync(path);
    }
    symlinkSync(`usr/${top}`, path);
  }
}

function moveInto(from: string, to: string): void {
  for (const entry of readdirSync(from)) {
    const source = join(from, entry);
    const destination = join(to, entry);
    if (!existsSync(destination) && !isSymlink(destination)) {
      renameSync(source, destination);
    } else if (lstatSync(source).isDirectory() && lstatSync(destination).isDirectory()) {
      moveInto(source, destination);
      rmdirSync(source);
    } else {
      throw new ImageBuildError(`merged /usr: ${relative(dirname(from), source)} and /usr's copy both exist`);
    }
  }
}

const isSymlink = (path: string): boolean => {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
};

function linkUnlessPresent(target: string, path: string): void {
  if (!existsSync(path) && !isSymlink(path)) symlinkSync(target, path);
}

/** What maintainer scripts and base-passwd would have made. */
function writeSystemFiles(dir: string, accounts: Account[]): void {
  writeAccounts(dir, accounts);
  writeFileSync(
    join(dir, 'etc/nsswitch.conf'),
    [
      'passwd: files',
      'group: files',
      'shadow: files',
      'hosts: files dns',
      'networks: files',
      'protocols: files',
      'services: files',
      '',
    ].join('\n'),
  );
  // dash's and tzdata's maintainer scripts would make these.
  if (existsSync(join(dir, 'usr/bin/dash'))) linkUnlessPresent('dash', join(dir, 'usr/bin/sh'));
  if (existsSync(join(dir, 'usr/share/zoneinfo/Etc/UTC'))) {
    linkUnlessPresent('/usr/share/zoneinfo/Etc/UTC', join(dir, 'etc/localtime'));
    writeFileSync(join(dir, 'etc/timezone'), 'Etc/UTC\n');
  }
  makeDirectory(join(dir, 'tmp'), 0o1777, 0);
  makeDirectory(join(dir, 'var/tmp'), 0o1777, 0);
}

/** /etc/passwd and /etc/group with root, nobody and `accounts`, and their home directories. */
function writeAccounts(dir: string, accounts: Account[]): void {
  const users = [{ name: 'root', id: 0, home: '/root' }, ...accounts];
  mkdirSync(join(dir, 'etc'), { recursive: true });
  writeFileSync(
    join(dir, 'etc/passwd'),
    [
      ...users.map(({ name, id, home }) => `${name}:x:${id}:${id}:${name}:${home}:/bin/sh`),
      'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'etc/group'),
    [...users.map(({ name, id }) => `${name}:x:${id}:`), 'nogroup:x:65534:', ''].join('\n'),
  );
  for (const { id, home } of users) makeDirectory(join(dir, home), id === 0 ? 0o700 : 0o755, id);
}

function makeDirectory(path: string, mode: number, owner: number): void {
  mkdirSync(path, { recursive: true });
  chownSync(path, owner, owner);
  chmodSync(path, mode);
}

function installFile(from: string, to: string, mode: number): void {
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(from, to);
  chmodSync(to, mode);
}

function installStaticBinary(from: string, to: string): void {
  if (isDynamicElf(from))
    throw new ImageBuildError(`${from} is dynamically linked; a FROM scratch image has no libraries`);
  installFile(from, to, 0o755);
}

/** Every dynamically linked file in the root resolves all its libraries inside the root. */
async function verifyLibraries(dir: string): Promise<void> {
  for (const path of walkFiles(dir)) {
    if (isDynamicElf(path)) await loadedLibraries(`/${relative(dir, path)}`, dir);
  }
}

function* walkFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walkFiles(path);
    else if (entry.isFile()) yield path;
  }
}

/** An x86-64 ELF object the dynamic loader resolves libraries for (it has a PT_DYNAMIC segment). */
function isDynamicElf(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const header = Buffer.alloc(64);
    if (readSync(fd, header, 0, 64, 0) < 64) return false;
    const elf64LittleEndianX86 = header.readUInt32BE(0) === 0x7f454c46 && header[4] === 2 && header[5] === 1;
    if (!elf64LittleEndianX86 || header.readUInt16LE(18) !== 62) return false;
    const entrySize = header.readUInt16LE(54);
    const programHeaders = Buffer.alloc(entrySize * header.readUInt16LE(56));
    readSync(fd, programHeaders, 0, programHeaders.length, Number(header.readBigUInt64LE(32)));
    for (let offset = 0; offset + 4 <= programHeaders.length; offset += entrySize) {
      if (programHeaders.readUInt32LE(offset) === 2) return true;
    }
    return false;
  } finally {
    closeSync(fd);
  }
}

/** `5:7.0.15-1~deb12u10` -> `7.0.15`: a tag may not hold Debian's epoch and revision. */
const upstreamVersion = (version: string): string => version.replace(/^\d+:/, '').replace(/-[^-]*$/, '');

// ---------------------------------------------------------------------------
// Go binaries from testbed/build.sh

function goBinaries(): GoBinaries {
  return {
    pause: goBinary('kubernetes-node', 'pause'),
    coredns: goBinary('coredns', 'coredns'),
    dapr: [
      ...DAPR_CONTROL_PLANE.map((program) => ({ program, path: goBinary('dapr-controlplane', program) })),
      { program: 'daprd', path: goBinary('daprd', 'daprd') },
    ],
  };
}

function presentGoBinaries(): GoBinaries | undefined {
  try {
    return goBinaries();
  } catch (error) {
    if (error instanceof MissingPrerequisiteError) return undefined;
    throw error;
  }
}

/** Waits while testbed/build.sh is building what is missing; missing with no build running throws. */
async function builtGoBinaries(): Promise<GoBinaries> {
  let waitingFor: string | undefined;
  for (;;) {
    try {
      return goBinaries();
    } catch (error) {
      if (!(error instanceof MissingPrerequisiteError)) throw error;
      // Checked after the binaries: a build that just finished has released its lock.
      if (!(await buildRunning())) return goBinaries();
      if (waitingFor !== error.message) log(`waiting for testbed/build.sh, running now: ${error.message}`);
      waitingFor = error.message;
      await sleep(5_000);
    }
  }
}

/** testbed/build.sh holds this lock while it builds. */
async function buildRunning(): Promise<boolean> {
  const lock = join(cacheDir, '.build.lock');
  if (!existsSync(lock)) return false;
  const probe = await tryCommand('flock', ['--nonblock', '--conflict-exit-code', '75', lock, 'true']);
  return probe.code === 75;
}

// ---------------------------------------------------------------------------
// Serialising builds, and what an interrupted one leaves

/**
 * An exclusive lock on the images directory, held by a `flock` child for as
 * long as its stdin is open: it ends with this process, however that ends.
 */
async function lockImagesDir(): Promise<() => void> {
  const lockFile = join(imagesDir, '.lock');
  const holder = spawn('flock', [lockFile, 'sh', '-c', 'echo locked && exec cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const waiting = setTimeout(() => {
    log(`waiting for another process that is building images (${lockFile})`);
  }, 1_000);
  let stderr = '';
  holder.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  try {
    await new Promise<void>((resolve, reject) => {
      holder.stdout.once('data', () => {
        resolve();
      });
      holder.once('error', reject);
      holder.once('exit', (code) => {
        reject(new ImageBuildError(`locking ${lockFile}: flock exited with code ${code}`, tail(stderr)));
      });
    });
  } finally {
    clearTimeout(waiting);
  }
  return () => {
    holder.stdin.end();
  };
}

/** Storage and partial archives of builds that were interrupted; only called with the lock held. */
function removeLeftovers(): void {
  for (const entry of readdirSync(imagesDir)) {
    const path = join(imagesDir, entry);
    if (entry.startsWith('build-')) {
      unmountUnder(path);
      rmSync(path, { recursive: true, force: true });
    } else if (entry.includes('.tmp-')) {
      rmSync(path, { force: true });
    }
  }
}

/** Nothing a build mounted may outlive it (vfs mounts nothing; a killed RUN step might have). */
function unmountUnder(dir: string): void {
  const mountPoints = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) =>
      line.split(' ')[4]?.replace(/\\(\d{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))),
    )
    .filter((point): point is string => point !== undefined && (point === dir || point.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
  for (const point of mountPoints) execFileSync('umount', ['--lazy', point]);
}

// ---------------------------------------------------------------------------
// Inputs and commands

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

/**
 * A large binary by path, size and modification time: testbed/build.sh and npm
 * replace a binary as a whole, so a changed binary changes these, and hashing
 * 130 MiB on every call would not be a stat.
 */
function fileIdentity(path: string): string {
  const stat = statSync(path);
  return `${path} ${stat.size} ${stat.mtimeMs}`;
}

function treeDigests(dir: string): string[] {
  return [...walkFiles(dir)].map((path) => `${relative(repoRoot, path)} ${sha256(readFileSync(path))}`).sort();
}

export class ImageBuildError extends Error {
  constructor(message: string, output?: string) {
    super(`[testbed/images] ${message}${output ? `\n${output}` : ''}`);
    this.name = 'ImageBuildError';
  }
}

const tail = (text: string, lines = 30): string => text.trimEnd().split('\n').slice(-lines).join('\n');

const execFileAsync = promisify(execFile);

interface CommandResult {
  ok: boolean;
  code: number | string | undefined;
  stdout: string;
  stderr: string;
}

async function tryCommand(
  file: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CommandResult> {
  try {
    const { stdout, stderr } = await execFileAsync(file, args, { ...options, maxBuffer: 512 * 2 ** 20 });
    return { ok: true, code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code?: number | string; stdout?: string; stderr?: string; message: string };
    return { ok: false, code: failure.code, stdout: failure.stdout ?? '', stderr: failure.stderr ?? failure.message };
  }
}

/** Runs a step's command; a failure names the step and the command, with the end of its output. */
async function command(
  step: string,
  file: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<string> {
  const result = await tryCommand(file, args, options);
  if (!result.ok) {
    throw new ImageBuildError(
      `${step} failed: \`${[file, ...args].join(' ')}\` exited with ${result.code ?? 'an error'}`,
      tail(result.stderr || result.stdout),
    );
  }
  return result.stdout;
}
