//! Workarounds for S3-compatible servers whose successful answers the SDK cannot parse.
//!
//! moto 5.2 names the root element of some XML answers `<Action>Response` where S3 (and the SDK's
//! parser) use `<Action>Result`: `ListPartsResponse` instead of `ListPartsResult`. [`RenameRoot`] is
//! an SDK interceptor, attached to just those operations, that renames the root element of the
//! response before the SDK parses it. On a server that answers correctly it changes nothing.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextMut;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::primitives::SdkBody;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};

/// Renames a response's root element `from` to `to` (both bare element names).
#[derive(Debug, Clone, Copy)]
pub(super) struct RenameRoot {
    pub(super) from: &'static str,
    pub(super) to: &'static str,
}

impl Intercept for RenameRoot {
    fn name(&self) -> &'static str {
        "blobseal::RenameRoot"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = context.response_mut();
        // Error answers keep their own root (`Error`); only a success can carry the wrong name.
        if !response.status().is_success() {
            return Ok(());
        }
        let inner = std::mem::replace(response.body_mut(), SdkBody::taken());
        let body = Renamed { inner, buf: BytesMut::new(), rename: *self, done: false };
        *response.body_mut() = SdkBody::from_body_1_x(body);
        Ok(())
    }
}

/// Collects the (small, bounded: one listing page) XML body, then yields it renamed in one frame.
/// The SDK buffers these bodies whole before parsing anyway.
struct Renamed {
    inner: SdkBody,
    buf: BytesMut,
    rename: RenameRoot,
    done: bool,
}

impl fmt::Debug for Renamed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renamed").field("rename", &self.rename).field("buffered", &self.buf.len()).finish()
    }
}

impl Body for Renamed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers carry nothing the XML parser reads.
                    if let Ok(data) = frame.into_data() {
                        this.buf.extend_from_slice(&data);
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    this.done = true;
                    let whole = std::mem::take(&mut this.buf).freeze();
                    let renamed = rename_root(whole, this.rename.from, this.rename.to);
                    return Poll::Ready(Some(Ok(Frame::data(renamed))));
                }
            }
        }
    }
}

/// Renames the element `from` (start tag `<from` followed by a space or `>`, and end tag
/// `</from>`) to `to`. Markup cannot appear inside text (`<` is escaped there), so a textual match
/// is an element. Without a `from` start tag the document is returned unchanged.
fn rename_root(xml: Bytes, from: &str, to: &str) -> Bytes {
    let open = format!("<{from}");
    let close = format!("</{from}>");
    let Some(start) = find(&xml, open.as_bytes())
        .filter(|&i| matches!(xml.get(i + open.len()), Some(b' ' | b'>' | b'\t' | b'\r' | b'\n' | b'/')))
    else {
        return xml;
    };
    let mut out = Vec::with_capacity(xml.len() + 2 * to.len());
    let (head, rest) = xml.split_at(start);
    out.extend_from_slice(head);
    out.push(b'<');
    out.extend_from_slice(to.as_bytes());
    let rest = rest.get(open.len()..).unwrap_or_default();
    match rfind(rest, close.as_bytes()) {
        Some(end) => {
            let (body, tail) = rest.split_at(end);
            out.extend_from_slice(body);
            out.extend_from_slice(format!("</{to}>").as_bytes());
            out.extend_from_slice(tail.get(close.len()..).unwrap_or_default());
        }
        None => out.extend_from_slice(rest),
    }
    Bytes::from(out)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renamed(xml: &str) -> String {
        let out = rename_root(Bytes::copy_from_slice(xml.as_bytes()), "ListPartsResponse", "ListPartsResult");
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn renames_moto_root_only() {
        let moto = "<?xml version=\"1.0\"?>\n<ListPartsResponse xmlns=\"x\"><Part/></ListPartsResponse>\n";
        assert_eq!(renamed(moto), "<?xml version=\"1.0\"?>\n<ListPartsResult xmlns=\"x\"><Part/></ListPartsResult>\n");
        assert_eq!(renamed("<ListPartsResponse></ListPartsResponse>"), "<ListPartsResult></ListPartsResult>");
    }

    #[test]
    fn leaves_other_documents_alone() {
        for xml in [
            "<ListPartsResult><Key>ListPartsResponse</Key></ListPartsResult>",
            "<ListPartsResponseX></ListPartsResponseX>",
            "",
            "<",
        ] {
            assert_eq!(renamed(xml), xml);
        }
    }
}
