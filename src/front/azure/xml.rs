//! The XML bodies of the Azure front end: a small escaping writer for responses and quick-xml readers
//! for the two request bodies it accepts (a block list and a tag set), bounded in size and depth.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use quick_xml::events::Event;
use quick_xml::Reader;

use super::error::AzureError;
use crate::core::blocks::BlockRef;

/// The XML declaration every response body starts with.
pub const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>";

pub use crate::front::xml_text::escape;

/// Whether `name` can be an XML element name (metadata written through S3 may use names that cannot:
/// those are left out of Azure listings).
pub fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A response body under construction.
#[derive(Default)]
pub struct Writer {
    out: String,
}

impl Writer {
    pub fn new() -> Self {
        Self { out: String::from(DECLARATION) }
    }

    pub fn open(&mut self, name: &str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// `<name a="v" ...>`.
    pub fn open_with(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.out.push('<');
        self.out.push_str(name);
        for (k, v) in attrs {
            self.out.push_str(&format!(" {k}=\"{}\"", escape(v)));
        }
        self.out.push('>');
        self
    }

    pub fn close(&mut self, name: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// `<name>text</name>`, or `<name />` for empty text.
    pub fn leaf(&mut self, name: &str, text: &str) -> &mut Self {
        if text.is_empty() {
            self.out.push_str(&format!("<{name} />"));
        } else {
            self.out.push_str(&format!("<{name}>{}</{name}>", escape(text)));
        }
        self
    }

    /// `leaf` only when there is a value.
    pub fn leaf_opt(&mut self, name: &str, text: Option<&str>) -> &mut Self {
        if let Some(t) = text {
            self.leaf(name, t);
        }
        self
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Longest block list body accepted: 50,000 entries of `<Uncommitted>` + 88 base64 characters.
pub const MAX_BLOCK_LIST_BYTES: usize = 8 * 1024 * 1024;
/// Longest tags body accepted (10 tags of 128 + 256 characters, generously).
pub const MAX_TAGS_BYTES: usize = 64 * 1024;

fn invalid_xml(detail: impl std::fmt::Display) -> AzureError {
    AzureError::bad_request("InvalidXmlDocument", format!("XML specified is not syntactically valid. {detail}"))
}

/// Element texts of a two-level document: `(parent path, element name, text)` for each leaf.
fn leaves(body: &[u8], max_depth: usize) -> Result<Vec<(Vec<String>, String)>, AzureError> {
    let mut reader = Reader::from_reader(body);
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut out = Vec::new();
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).map_err(invalid_xml)? {
            Event::Start(e) => {
                if path.len() >= max_depth {
                    return Err(invalid_xml("too deep"));
                }
                path.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                text.clear();
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let mut full = path.clone();
                full.push(name);
                out.push((full, String::new()));
            }
            Event::Text(t) => {
                let t = t.decode().map_err(invalid_xml)?;
                text.push_str(&quick_xml::escape::unescape(&t).map_err(invalid_xml)?);
            }
            Event::CData(t) => text.push_str(&String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(invalid_xml)?;
                let entity = format!("&{name};");
                let resolved = quick_xml::escape::unescape(&entity).map_err(invalid_xml)?;
                text.push_str(&resolved);
            }
            Event::End(_) => {
                out.push((path.clone(), std::mem::take(&mut text)));
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !path.is_empty() {
        return Err(invalid_xml("unclosed element"));
    }
    Ok(out)
}

/// Parses a Put Block List body: `<BlockList><Latest|Committed|Uncommitted>base64 id</...>...</BlockList>`.
pub fn parse_block_list(body: &[u8]) -> Result<Vec<BlockRef>, AzureError> {
    let mut refs = Vec::new();
    let mut saw_root = false;
    for (path, text) in leaves(body, 2)? {
        match path.as_slice() {
            [root] if root == "BlockList" => saw_root = true,
            [root, kind] if root == "BlockList" => {
                let id = STANDARD.decode(text.trim().as_bytes()).map_err(|_| {
                    AzureError::bad_request("InvalidBlockId", "The specified block ID is invalid: it must be base64.")
                })?;
                refs.push(match kind.as_str() {
                    "Latest" => BlockRef::Latest(id),
                    "Committed" => BlockRef::Committed(id),
                    "Uncommitted" => BlockRef::Uncommitted(id),
                    other => return Err(invalid_xml(format!("unexpected element {other}"))),
                });
            }
            _ => return Err(invalid_xml("expected <BlockList>")),
        }
    }
    if !saw_root {
        return Err(invalid_xml("expected <BlockList>"));
    }
    Ok(refs)
}

/// Parses a Set Blob Tags body: `<Tags><TagSet><Tag><Key/><Value/></Tag>...</TagSet></Tags>`.
pub fn parse_tags(body: &[u8]) -> Result<BTreeMap<String, String>, AzureError> {
    let mut tags = BTreeMap::new();
    let mut key: Option<String> = None;
    let mut value: Option<String> = None;
    for (path, text) in leaves(body, 4)? {
        let names: Vec<&str> = path.iter().map(String::as_str).collect();
        match names.as_slice() {
            ["Tags", "TagSet", "Tag", "Key"] => key = Some(text),
            ["Tags", "TagSet", "Tag", "Value"] => value = Some(text),
            ["Tags", "TagSet", "Tag"] => {
                let (Some(k), v) = (key.take(), value.take()) else { return Err(invalid_xml("a tag without a key")) };
                if tags.insert(k, v.unwrap_or_default()).is_some() {
                    return Err(AzureError::bad_request("InvalidTag", "The tags specified contain a duplicate key."));
                }
            }
            ["Tags"] | ["Tags", "TagSet"] => {}
            _ => return Err(invalid_xml("expected <Tags><TagSet><Tag>")),
        }
    }
    Ok(tags)
}

/// `<Tags><TagSet>...</TagSet></Tags>`.
pub fn tags_body(tags: &BTreeMap<String, String>) -> String {
    let mut w = Writer::new();
    w.open("Tags").open("TagSet");
    for (k, v) in tags {
        w.open("Tag").leaf("Key", k).leaf("Value", v).close("Tag");
    }
    w.close("TagSet").close("Tags");
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_lists_parse_every_kind() {
        let body = b"<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>AAE=</Latest>\n<Committed>AAI=</Committed><Uncommitted>AAM=</Uncommitted></BlockList>";
        assert_eq!(
            parse_block_list(body).unwrap(),
            vec![BlockRef::Latest(vec![0, 1]), BlockRef::Committed(vec![0, 2]), BlockRef::Uncommitted(vec![0, 3])]
        );
        assert_eq!(parse_block_list(b"<BlockList />").unwrap(), vec![]);
        assert_eq!(parse_block_list(b"<BlockList></BlockList>").unwrap(), vec![]);
        assert_eq!(parse_block_list(b"<BlockList><Latest>!!</Latest></BlockList>").unwrap_err().code, "InvalidBlockId");
        assert_eq!(parse_block_list(b"<Other/>").unwrap_err().code, "InvalidXmlDocument");
        assert_eq!(parse_block_list(b"<BlockList><Latest>").unwrap_err().code, "InvalidXmlDocument");
        assert!(parse_block_list(b"<BlockList><Latest><x>AA==</x></Latest></BlockList>").is_err());
        assert!(parse_block_list(b"not xml at all <<<").is_err());
    }

    #[test]
    fn tags_round_trip() {
        let tags: BTreeMap<String, String> =
            [("a".to_owned(), "1 & <2>".to_owned()), ("project".to_owned(), String::new())].into();
        assert_eq!(parse_tags(tags_body(&tags).as_bytes()).unwrap(), tags);
        assert!(parse_tags(b"<Tags><TagSet><Tag><Value>x</Value></Tag></TagSet></Tags>").is_err());
        let dup = b"<Tags><TagSet><Tag><Key>a</Key><Value>1</Value></Tag><Tag><Key>a</Key><Value>2</Value></Tag></TagSet></Tags>";
        assert_eq!(parse_tags(dup).unwrap_err().code, "InvalidTag");
    }

    #[test]
    fn escaping() {
        assert_eq!(escape("a<b>&\"'\u{1}"), "a&lt;b&gt;&amp;&quot;&apos;&#x1;");
        let mut w = Writer::new();
        w.open_with("R", &[("A", "x\"y")]).leaf("E", "").leaf("T", "v").close("R");
        assert_eq!(w.finish(), format!("{DECLARATION}<R A=\"x&quot;y\"><E /><T>v</T></R>"));
    }
}
