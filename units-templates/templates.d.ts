// Unit templates are plain text files, bundled by esbuild's text loader (see build.mjs) and loaded by
// test/support/text-loader.ts under `node --test`.
declare module "*.in" {
  const text: string;
  export default text;
}
