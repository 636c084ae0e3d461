'use strict';
// esbuild plugins for serverless.yml's bundles (custom.esbuild.plugins), also used by the package tests' builds.
const { readFile } = require('node:fs/promises');
const { basename, join } = require('node:path');

/**
 * The AWS SDK's schema modules describe every shape of a service with object literals keyed by short constants
 * (`{ [_xN]: _m }` where `const _xN = "xmlName"`). esbuild cannot prove a computed key free of side effects, so it
 * keeps every shape, used or not: about 540 KB of EC2's schema in each bundle that calls EC2. Writing the constant's
 * string in place of the computed key (`{ "xmlName": _m }`, the same object) lets esbuild drop the shapes no command
 * of the bundle reaches.
 */
const SCHEMA_FILE =
  /[\\/]@aws-sdk[\\/][^\\/]+[\\/]dist-es[\\/](submodules[\\/][^\\/]+[\\/])?schemas[\\/]schemas_\d+\.js$/;

function literalSchemaKeys(text) {
  const constants = new Map();
  for (const [, name, value] of text.matchAll(/^const (_\w+) = ("[^"\\\n]*");$/gm)) constants.set(name, value);
  return text.replace(/([{,]\s*)\[(_\w+)\]:/g, (match, before, name) =>
    constants.has(name) ? `${before}${constants.get(name)}:` : match,
  );
}

const schemaKeys = {
  name: 'ami-dr-sdk-schema-keys',
  setup(build) {
    build.onLoad({ filter: SCHEMA_FILE }, async (args) => ({
      contents: literalSchemaKeys(await readFile(args.path, 'utf8')),
      loader: 'js',
    }));
  },
};

/**
 * `@aws-sdk/client-rbin` 3.523.0 (the newest on the registry) brings its own older default credential chain, with
 * its own SSO, SSO-OIDC and STS clients. Resolving its `@aws-sdk/credential-provider-node` to the one every other
 * client uses keeps one chain per bundle (`defaultProvider(init)` returns a credentials provider in both).
 */
const RBIN_FILE = /[\\/]node_modules[\\/]@aws-sdk[\\/]client-rbin[\\/]/;
const sharedCredentialChain = {
  name: 'ami-dr-shared-credential-chain',
  setup(build) {
    build.onResolve({ filter: /^@aws-sdk\/credential-provider-node$/ }, (args) =>
      RBIN_FILE.test(args.importer)
        ? build.resolve(args.path, { kind: args.kind, resolveDir: join(__dirname, '..', '..') })
        : undefined,
    );
  },
};

/**
 * With `splitting`, what a bundle only reaches through `import()` (the SDK's SSO, INI, process, web-identity and IMDS
 * credential providers with their STS/SSO clients, its event streams, the browser user-agent parser) goes into chunks
 * that a cold start never loads: in Lambda, credentials come from the environment, the first provider of the chain.
 * serverless-esbuild builds every function into one directory and zips, for each function, the files there except
 * the other functions' `<name>.*`; naming a function's chunks `<name>.chunks/…` keeps them in its own zip only.
 */
const ownChunks = {
  name: 'ami-dr-own-chunks',
  setup(build) {
    const options = build.initialOptions;
    if (!options.splitting) return;
    const entries = Array.isArray(options.entryPoints) ? options.entryPoints : Object.values(options.entryPoints ?? {});
    if (entries.length !== 1) throw new Error('ami-dr-own-chunks: splitting needs one entry point per build');
    const entry = typeof entries[0] === 'string' ? entries[0] : entries[0].in;
    options.chunkNames = `${basename(entry).replace(/\.[^.]+$/, '')}.chunks/[name]-[hash]`;
  },
};

module.exports = [schemaKeys, sharedCredentialChain, ownChunks];
module.exports.literalSchemaKeys = literalSchemaKeys;
