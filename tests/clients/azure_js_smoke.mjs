// Smoke test of the Azure JS SDK (@azure/storage-blob 12) against an Azure Blob endpoint (blobseal's Azure front
// end, or Azurite as the reference). Run by tests/clients/test_azure_js.py:
//
//   BLOBSEAL_AZURE_JS=<dir with node_modules/@azure/storage-blob> \
//   AZURE_STORAGE_CONNECTION_STRING='DefaultEndpointsProtocol=http;AccountName=…;AccountKey=…;BlobEndpoint=…;' \
//   node tests/clients/azure_js_smoke.mjs
//
// Creates a container, uploads single-shot and chunked (1 MiB blocks, concurrency 4), reads ranges, lists with a
// prefix, sets metadata and tags, reads through a SAS, deletes. Prints every failed check and exits 1 if any;
// prints "OK <n> checks" and exits 0 otherwise. The SDK never retries: an error shows as what it is.

import { createHash, randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import path from "node:path";

const jsDir = process.env.BLOBSEAL_AZURE_JS;
const conn = process.env.AZURE_STORAGE_CONNECTION_STRING;
if (!jsDir || !conn) {
  console.error("FAIL: BLOBSEAL_AZURE_JS and AZURE_STORAGE_CONNECTION_STRING must be set");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(jsDir), "node_modules", "_"));
const {
  BlobServiceClient, BlobSASPermissions, BlockBlobClient, StorageSharedKeyCredential,
  generateBlobSASQueryParameters,
} = require("@azure/storage-blob");

const MIB = 1024 * 1024;
const failures = [];
let checks = 0;

function check(cond, what, detail) {
  checks += 1;
  if (!cond) failures.push(detail === undefined ? what : `${what}: ${detail}`);
}

function sameBytes(got, want, what) {
  const g = Buffer.from(got);
  if (g.equals(want)) { check(true, what); return; }
  let i = 0;
  while (i < Math.min(g.length, want.length) && g[i] === want[i]) i += 1;
  check(false, what, `got ${g.length} bytes, want ${want.length}, first difference at ${i}`);
}

function eq(got, want, what) {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  check(g === w, what, `got ${g}, want ${w}`);
}

const md5 = (buf) => createHash("md5").update(buf).digest();

async function streamToBuffer(stream) {
  const parts = [];
  for await (const part of stream) parts.push(Buffer.from(part));
  return Buffer.concat(parts);
}

// Run one step; an exception fails the step (with the service's error code) and the script goes on.
async function step(name, fn) {
  try {
    await fn();
  } catch (err) {
    const code = err?.details?.errorCode ?? err?.code ?? "";
    failures.push(`${name}: threw ${err?.statusCode ?? ""} ${code} ${String(err?.message ?? err).split("\n")[0]}`);
  }
}

const options = { retryOptions: { maxTries: 1, tryTimeoutInMs: 120000 } };
const service = BlobServiceClient.fromConnectionString(conn, options);
const containerName = "js-" + randomBytes(8).toString("hex");
const container = service.getContainerClient(containerName);
const small = randomBytes(100 * 1024 + 3);
const big = randomBytes(3 * MIB + 11);

await step("create container", async () => {
  await container.create({ metadata: { origin: "js" } });
  const props = await container.getProperties();
  eq(props.metadata, { origin: "js" }, "container metadata");
  const names = [];
  for await (const c of service.listContainers({ prefix: containerName })) names.push(c.name);
  eq(names, [containerName], "listContainers with prefix");
});

await step("uploadData single-shot", async () => {
  const blob = container.getBlockBlobClient("dir/small.bin");
  await blob.uploadData(small, {
    metadata: { kind: "single" },
    blobHTTPHeaders: { blobContentType: "application/x-js-smoke", blobCacheControl: "no-cache" },
  });
  const props = await blob.getProperties();
  eq(props.contentLength, small.length, "single-shot contentLength");
  eq(props.contentType, "application/x-js-smoke", "single-shot contentType");
  eq(props.cacheControl, "no-cache", "single-shot cacheControl");
  eq(props.metadata, { kind: "single" }, "single-shot metadata");
  eq(props.blobType, "BlockBlob", "single-shot blobType");
  check(props.contentMD5 && Buffer.from(props.contentMD5).equals(md5(small)), "single-shot Content-MD5 is the "
    + "plaintext MD5", props.contentMD5 && Buffer.from(props.contentMD5).toString("hex"));
  sameBytes(await blob.downloadToBuffer(), small, "single-shot download");
});

await step("uploadData chunked", async () => {
  const blob = container.getBlockBlobClient("dir/sub/big.bin");
  const progress = [];
  await blob.uploadData(big, {
    blockSize: MIB, maxSingleShotSize: MIB, concurrency: 4, metadata: { kind: "chunked" },
    blobHTTPHeaders: { blobContentMD5: md5(big) }, onProgress: (p) => progress.push(p.loadedBytes),
  });
  check(progress.length > 0 && Math.max(...progress) === big.length, "chunked upload progress", String(progress));
  const list = await blob.getBlockList("committed");
  eq((list.committedBlocks ?? []).map((b) => b.size), [MIB, MIB, MIB, 11], "chunked: committed block sizes");
  const props = await blob.getProperties();
  eq(props.contentLength, big.length, "chunked contentLength");
  eq(props.metadata, { kind: "chunked" }, "chunked metadata");
  check(props.contentMD5 && Buffer.from(props.contentMD5).equals(md5(big)), "chunked Content-MD5 kept");
  sameBytes(await blob.downloadToBuffer(0, undefined, { blockSize: MIB, concurrency: 4 }), big,
    "chunked parallel download");
});

await step("download range", async () => {
  const blob = container.getBlobClient("dir/sub/big.bin");
  const resp = await blob.download(MIB - 7, 20);
  eq(resp.contentLength, 20, "range contentLength");
  check(/^bytes 1048569-1048588\/3145739$/.test(resp.contentRange ?? ""), "range Content-Range", resp.contentRange);
  sameBytes(await streamToBuffer(resp.readableStreamBody), big.subarray(MIB - 7, MIB + 13), "range bytes");
  const tail = await blob.download(big.length - 5);
  sameBytes(await streamToBuffer(tail.readableStreamBody), big.subarray(big.length - 5), "open-ended tail range");
  sameBytes(await blob.downloadToBuffer(2 * MIB + 1, MIB), big.subarray(2 * MIB + 1, 3 * MIB + 1),
    "downloadToBuffer offset/count");
});

await step("list blobs with prefix", async () => {
  await container.getBlockBlobClient("other.txt").upload("x", 1);
  const flat = [];
  for await (const b of container.listBlobsFlat({ prefix: "dir/", includeMetadata: true })) {
    flat.push([b.name, b.properties.contentLength, b.metadata?.kind]);
  }
  eq(flat, [["dir/small.bin", small.length, "single"], ["dir/sub/big.bin", big.length, "chunked"]],
    "listBlobsFlat prefix dir/");
  const items = [];
  for await (const it of container.listBlobsByHierarchy("/", { prefix: "dir/" })) {
    items.push(it.kind === "prefix" ? `prefix:${it.name}` : `blob:${it.name}`);
  }
  eq(items.sort(), ["blob:dir/small.bin", "prefix:dir/sub/"], "listBlobsByHierarchy delimiter /");
  // Pages of at most 2 that together list every blob once, in order. (Azure may return fewer than maxresults
  // with a continuation, even none: blobseal does when its hidden block tables take up a page.)
  const pages = [];
  for await (const page of container.listBlobsFlat().byPage({ maxPageSize: 2 })) {
    pages.push(page.segment.blobItems.map((b) => b.name));
    if (pages.length > 20) break;
  }
  check(pages.every((p) => p.length <= 2), "listBlobsFlat pages of at most 2", JSON.stringify(pages));
  eq(pages.flat(), ["dir/small.bin", "dir/sub/big.bin", "other.txt"], "listBlobsFlat pages of 2, joined");
});

await step("set/get metadata", async () => {
  const blob = container.getBlobClient("dir/small.bin");
  await blob.setMetadata({ owner: "ops", stage: "two" });
  eq((await blob.getProperties()).metadata, { owner: "ops", stage: "two" }, "metadata replaced");
  sameBytes(await blob.downloadToBuffer(), small, "body unchanged by setMetadata");
  eq((await blob.getProperties()).contentLength, small.length, "size unchanged by setMetadata");
});

await step("tags", async () => {
  const blob = container.getBlobClient("dir/sub/big.bin");
  await blob.setTags({ project: "blobseal", tier: "t1" });
  eq((await blob.getTags()).tags, { project: "blobseal", tier: "t1" }, "getTags");
  await blob.setTags({});
  eq((await blob.getTags()).tags, {}, "tags cleared");
});

await step("read through a blob SAS", async () => {
  const account = /AccountName=([^;]+)/.exec(conn)[1];
  const key = /AccountKey=([^;]+)/.exec(conn)[1];
  const blob = container.getBlobClient("dir/small.bin");
  const sas = generateBlobSASQueryParameters({
    containerName, blobName: "dir/small.bin", permissions: BlobSASPermissions.parse("r"),
    expiresOn: new Date(Date.now() + 3600 * 1000),
  }, new StorageSharedKeyCredential(account, key)).toString();
  const viaSas = new BlockBlobClient(`${blob.url}?${sas}`, undefined, options);
  sameBytes(await viaSas.downloadToBuffer(), small, "download with a blob SAS");
  let refused = null;
  try { await viaSas.upload("no", 2); } catch (err) { refused = err.statusCode; }
  eq(refused, 403, "write with a read-only SAS refused");
});

await step("delete", async () => {
  const blob = container.getBlobClient("dir/small.bin");
  await blob.delete();
  eq(await blob.exists(), false, "deleted blob is gone");
  let status = null;
  try { await blob.download(); } catch (err) { status = err.statusCode; }
  eq(status, 404, "download of a deleted blob");
  eq((await container.getBlobClient("dir/small.bin").deleteIfExists()).succeeded, false, "deleteIfExists again");
  const left = [];
  for await (const b of container.listBlobsFlat()) left.push(b.name);
  eq(left, ["dir/sub/big.bin", "other.txt"], "listing after delete");
  await container.delete();
  eq(await container.exists(), false, "deleted container is gone");
});

// Best-effort clean-up if a step failed before the container was deleted.
try { await container.deleteIfExists(); } catch { /* reported above */ }

if (failures.length) {
  for (const f of failures) console.error(`FAIL: ${f}`);
  console.error(`${failures.length} failed of ${checks} checks (container ${containerName})`);
  process.exit(1);
}
console.log(`OK ${checks} checks (container ${containerName})`);
