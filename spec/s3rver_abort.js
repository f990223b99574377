// s3rver_abort.js: s3rver 3.7.1 (npm) for the remote specs, with the one S3
// call it lacks: AbortMultipartUpload (DELETE /bucket/key?uploadId=ID),
// which s3rver answers with 405 MethodNotAllowed. What S3 does is added
// here (https://docs.aws.amazon.com/AmazonS3/latest/API/API_AbortMultipartUpload.html):
// the upload's stored parts are removed and the answer is 204, or 404
// NoSuchUpload for an upload that does not exist. The request has passed
// s3rver's own signature check by then (its router runs the authentication
// middleware before the object routes).
//   node spec/s3rver_abort.js NODE_MODULES DIR ADDRESS PORT BUCKET
'use strict';
const path = require('path');
const [modules, dir, address, port, bucket] = process.argv.slice(2);
const need = m => require(path.resolve(modules, m));
const S3rver = need('s3rver');
const router = need('s3rver/lib/routes');
const S3Error = need('s3rver/lib/models/error');
const fs = need('fs-extra');

let patched = 0;
for (const layer of router.stack) {
  if (layer.path !== '/:bucket/:key+' || !layer.methods.includes('DELETE')) continue;
  const last = layer.stack.length - 1;
  const deleteObject = layer.stack[last];
  layer.stack[last] = async (ctx, next) => {
    if (ctx.params.queryMethod !== 'uploadId') return deleteObject(ctx, next);
    const id = String(ctx.query.uploadId);
    // the folder s3rver keeps an upload's parts in (FilesystemStore.putPart)
    const folder = path.join(ctx.store.getResourcePath(ctx.params.bucket, undefined, 'uploads'), id);
    if (!/^[0-9a-f]+$/.test(id) || !(await fs.pathExists(folder))) {
      throw new S3Error('NoSuchUpload', 'The specified upload does not exist.', { UploadId: id });
    }
    await fs.remove(folder);
    ctx.status = 204;
  };
  patched++;
}
if (patched !== 1) {
  console.error('s3rver_abort.js: the DELETE object route of s3rver was not found (another version?)');
  process.exit(1);
}

new S3rver({ directory: dir, address, port: Number(port), silent: true, configureBuckets: [{ name: bucket }] })
  .run()
  .catch(err => {
    console.error(err);
    process.exit(1);
  });
