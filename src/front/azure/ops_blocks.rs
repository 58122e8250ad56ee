//! Put Block, Put Block List and Get Block List (the stateless block format is `core::blocks`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::{HeaderMap, StatusCode};

use super::body::{self, Checks};
use super::headers::{self, put};
use super::ops_blobs::{
    check_tag_condition, check_write_conditions, content_length, mismatch_error, put_request, written,
};
use super::xml::{self, Writer};
use super::{empty, read_small_body, xml_response, AzureError, Ctx, Response};

/// Azure's largest block (4000 MiB).
const MAX_BLOCK: u64 = 4000 * 1024 * 1024;

fn block_id(cx: &Ctx<'_>) -> Result<Vec<u8>, AzureError> {
    let bad = || AzureError::bad_request("InvalidQueryParameterValue", "blockid must be base64 of 1 to 64 bytes.");
    let id = cx.query.get("blockid").ok_or_else(bad)?;
    let id = STANDARD.decode(id).map_err(|_| bad())?;
    if id.is_empty() || id.len() > crate::core::blocks::MAX_BLOCK_ID_LEN {
        return Err(bad());
    }
    Ok(id)
}

pub async fn put_block(cx: &Ctx<'_>, request_body: s3s::Body) -> Result<Response, AzureError> {
    let (container, blob) = (cx.container()?, cx.blob()?);
    let id = block_id(cx)?;
    let len = content_length(cx, MAX_BLOCK)?;
    let md5 = headers::md5_header(cx.headers, "content-md5")?;
    // Without a Content-MD5 Azure answers with the CRC-64 it computed (the client's, if it sent one).
    let checks =
        Checks { md5, crc64: headers::crc64_header(cx.headers)?, compute_md5: false, compute_crc64: md5.is_none() };
    if len == 0 {
        body::check_empty(&checks).map_err(mismatch_error)?;
    }
    let (stream, verdict) = body::checked(request_body, len, checks);
    let result = cx.core.stage_block(&cx.tenant, container, blob, &id, stream, len).await;
    if let Some(m) = verdict.mismatch() {
        return Err(mismatch_error(m));
    }
    result.map_err(|e| cx.core_err(e))?;
    let mut h = HeaderMap::new();
    put(&mut h, "x-ms-request-server-encrypted", "true");
    if let Some(v) = headers::text(cx.headers, "content-md5") {
        put(&mut h, "content-md5", v);
    }
    // An empty body is never polled: its CRC-64 is 0.
    if let Some(crc) = verdict.crc64().or((len == 0 && md5.is_none()).then_some(0)) {
        put(&mut h, "x-ms-content-crc64", &STANDARD.encode(crc.to_le_bytes()));
    }
    Ok(empty(StatusCode::CREATED, h))
}

pub async fn put_block_list(cx: &Ctx<'_>, request_body: s3s::Body) -> Result<Response, AzureError> {
    let (container, blob) = (cx.container()?, cx.blob()?);
    let bytes = read_small_body(request_body, xml::MAX_BLOCK_LIST_BYTES).await?;
    // Put Block List's Content-MD5 (in and out) is the block list's own, not the blob's (Azure's rule).
    let list_md5: [u8; 16] = <md5::Md5 as md5::Digest>::digest(&bytes).into();
    if headers::md5_header(cx.headers, "content-md5")?.is_some_and(|want| want != list_md5) {
        return Err(mismatch_error(body::Mismatch::Md5));
    }
    let refs = xml::parse_block_list(&bytes)?;
    let mut req = put_request(cx, false)?;
    req.if_none_match_any = check_write_conditions(cx, container, blob).await?;
    // The blob's MD5 is what the client declares (Azure does not compute one for a block list).
    req.content_md5 = headers::md5_header(cx.headers, "x-ms-blob-content-md5")?.map(|m| STANDARD.encode(m));
    let out = cx.core.commit_blocks(&cx.tenant, container, blob, refs, req).await.map_err(|e| cx.write_err(e))?;
    Ok(empty(StatusCode::CREATED, written(&out, Some(&STANDARD.encode(list_md5)))))
}

pub async fn get_block_list(cx: &Ctx<'_>) -> Result<Response, AzureError> {
    let (container, blob) = (cx.container()?, cx.blob()?);
    let which = cx.query.get("blocklisttype").unwrap_or("committed").to_ascii_lowercase();
    let (committed, uncommitted) = match which.as_str() {
        "committed" => (true, false),
        "uncommitted" => (false, true),
        "all" => (true, true),
        _ => {
            return Err(AzureError::bad_request(
                "InvalidQueryParameterValue",
                "blocklisttype must be committed, uncommitted or all.",
            ))
        }
    };
    check_tag_condition(cx, container, blob).await?;
    let list = cx.core.list_blocks(&cx.tenant, container, blob).await.map_err(|e| cx.core_err(e))?;
    if list.blob.is_none() && list.uncommitted.is_empty() {
        return Err(AzureError::new(StatusCode::NOT_FOUND, "BlobNotFound", "The specified blob does not exist."));
    }
    let mut h = HeaderMap::new();
    if let Some(info) = &list.blob {
        put(&mut h, "etag", &headers::quoted(&headers::info_etag(info)));
        put(&mut h, "last-modified", &headers::http_date(info.last_modified));
        put(&mut h, "x-ms-blob-content-length", &info.size.to_string());
    }
    let mut w = Writer::new();
    w.open("BlockList");
    let section = |w: &mut Writer, name: &str, blocks: &[crate::core::blocks::Block]| {
        w.open(name);
        for b in blocks {
            w.open("Block").leaf("Name", &STANDARD.encode(&b.id)).leaf("Size", &b.size.to_string()).close("Block");
        }
        w.close(name);
    };
    if committed {
        section(&mut w, "CommittedBlocks", &list.committed);
    }
    if uncommitted {
        section(&mut w, "UncommittedBlocks", &list.uncommitted);
    }
    w.close("BlockList");
    Ok(xml_response(StatusCode::OK, h, w.finish()))
}
